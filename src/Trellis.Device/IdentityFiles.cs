using System.Text;

namespace Trellis.Device;

/// <summary>The files of a device identity on disk (a `trellis provision` folder, a gateway's identity, the simulator's devices).</summary>
public static class IdentityFiles
{
    /// <summary>
    /// Writes a private key readable by its owner only (0600) from its first byte: the file is made
    /// with that mode (then moved over any key already there), never written under the process's
    /// umask and narrowed afterwards, when another local user could have opened it in between.
    /// </summary>
    public static async Task WritePrivateKeyAsync(string path, string pem, CancellationToken cancellationToken = default)
    {
        var temporary = $"{path}.{Guid.NewGuid():N}.tmp";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        try
        {
            await using (var stream = new FileStream(temporary, options))
            {
                await stream.WriteAsync(Encoding.ASCII.GetBytes(pem), cancellationToken);
            }

            File.Move(temporary, path, overwrite: true);
        }
        catch
        {
            File.Delete(temporary);
            throw;
        }
    }
}
