using ZstdSharp;
using ZstdSharp.Unsafe;

namespace Trellis.Jobs.Firmware;

/// <summary>
/// Delta images in zstd's patch-from form: the target image compressed with the device's current
/// image as the compressor's raw-content dictionary, long-distance matching on and a window that
/// spans both images. The result is an ordinary zstd frame; <c>zstd -d --patch-from=OLD</c>
/// rebuilds the target from it, as does the device SDK's OTA agent.
/// </summary>
public static class FirmwareDelta
{
    /// <summary>The largest image (either side) a delta is made for: both sit in memory while it is.</summary>
    public const long MaxImageBytes = 256L << 20;

    /// <summary>Media type of a patch (it is a zstd frame).</summary>
    public const string MediaType = "application/zstd";

    public static byte[] Create(byte[] from, byte[] to, int level = 19)
    {
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(to);
        using var compressor = new Compressor(level);
        compressor.SetParameter(ZSTD_cParameter.ZSTD_c_windowLog, WindowLog(from.Length, to.Length));
        compressor.SetParameter(ZSTD_cParameter.ZSTD_c_enableLongDistanceMatching, 1);
        compressor.SetParameter(ZSTD_cParameter.ZSTD_c_checksumFlag, 1);
        compressor.LoadDictionary(from);
        return compressor.Wrap(to).ToArray();
    }

    /// <summary>The window that lets matches reach back over the whole old image (as zstd's --patch-from picks it).</summary>
    public static int WindowLog(long fromBytes, long toBytes)
    {
        var span = Math.Max(fromBytes + toBytes, 1024);
        var log = 10;
        while ((1L << log) < span && log < 30)
        {
            log++;
        }

        return log;
    }
}
