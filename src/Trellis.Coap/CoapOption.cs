using System.Buffers.Binary;

namespace Trellis.Coap;

/// <summary>One option of a CoAP message: its number and its value as sent.</summary>
public readonly record struct CoapOption(ushort Number, byte[] Value)
{
    public const ushort IfMatch = 1;
    public const ushort UriHost = 3;
    public const ushort ETag = 4;
    public const ushort IfNoneMatch = 5;
    public const ushort Observe = 6;
    public const ushort UriPort = 7;
    public const ushort LocationPath = 8;
    public const ushort UriPath = 11;
    public const ushort ContentFormat = 12;
    public const ushort MaxAge = 14;
    public const ushort UriQuery = 15;
    public const ushort Accept = 17;
    public const ushort LocationQuery = 20;
    public const ushort Block2 = 23;
    public const ushort Block1 = 27;
    public const ushort Size2 = 28;
    public const ushort ProxyUri = 35;
    public const ushort ProxyScheme = 39;
    public const ushort Size1 = 60;

    /// <summary>RFC 7252 §5.4.1: an odd number is critical; an endpoint that does not know it must refuse the message.</summary>
    public static bool IsCritical(ushort number) => (number & 1) == 1;

    /// <summary>The options this endpoint understands (RFC 7252 §5.10, RFC 7641, RFC 7959), and whether each may repeat.</summary>
    public static bool? Repeatable(ushort number) => number switch
    {
        IfMatch or ETag or LocationPath or UriPath or UriQuery or LocationQuery => true,
        UriHost or IfNoneMatch or Observe or UriPort or ContentFormat or MaxAge or Accept or Block2 or Block1 or Size2 or ProxyUri or ProxyScheme or Size1 => false,
        _ => null,
    };

    public static CoapOption Text(ushort number, string value) => new(number, System.Text.Encoding.UTF8.GetBytes(value));

    /// <summary>An unsigned integer in the fewest bytes, big-endian (0 is the empty value).</summary>
    public static CoapOption Of(ushort number, uint value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        var skip = 0;
        while (skip < 4 && bytes[skip] == 0)
        {
            skip++;
        }

        return new(number, bytes[skip..]);
    }

    /// <summary>The value as an unsigned integer (up to four bytes); null when longer.</summary>
    public uint? AsValue()
    {
        if (Value.Length > 4)
        {
            return null;
        }

        uint result = 0;
        foreach (var b in Value)
        {
            result = (result << 8) | b;
        }

        return result;
    }

    public string AsText() => System.Text.Encoding.UTF8.GetString(Value);
}
