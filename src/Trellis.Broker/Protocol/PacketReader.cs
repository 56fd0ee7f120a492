using System.Buffers.Binary;
using System.Text;

namespace Trellis.Broker.Protocol;

/// <summary>Reads MQTT data types (MQTT 5 §1.5) from one packet body. Pure: no I/O, no locks.</summary>
internal ref struct PacketReader(ReadOnlySpan<byte> span)
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private readonly ReadOnlySpan<byte> _span = span;
    private int _position;

    public readonly int Remaining => _span.Length - _position;

    public readonly int Position => _position;

    public byte ReadByte()
    {
        Need(1);
        return _span[_position++];
    }

    public ushort ReadUInt16()
    {
        Need(2);
        var value = BinaryPrimitives.ReadUInt16BigEndian(_span[_position..]);
        _position += 2;
        return value;
    }

    public uint ReadUInt32()
    {
        Need(4);
        var value = BinaryPrimitives.ReadUInt32BigEndian(_span[_position..]);
        _position += 4;
        return value;
    }

    /// <summary>MQTT 5 §1.5.5 variable byte integer: at most 4 bytes.</summary>
    public int ReadVarInt()
    {
        var value = 0;
        for (var i = 0; i < 4; i++)
        {
            var b = ReadByte();
            value |= (b & 0x7F) << (7 * i);
            if ((b & 0x80) == 0)
            {
                return value;
            }
        }

        throw new MqttProtocolException(ReasonCode.MalformedPacket, "variable byte integer longer than 4 bytes");
    }

    /// <summary>The next length-prefixed field without consuming it (empty when it does not fit).</summary>
    public readonly ReadOnlySpan<byte> PeekBinary()
    {
        if (_span.Length - _position < 2)
        {
            return [];
        }

        var length = BinaryPrimitives.ReadUInt16BigEndian(_span[_position..]);
        return _span.Length - _position - 2 < length ? [] : _span.Slice(_position + 2, length);
    }

    public ReadOnlySpan<byte> ReadBinary()
    {
        var length = ReadUInt16();
        Need(length);
        var value = _span.Slice(_position, length);
        _position += length;
        return value;
    }

    /// <summary>MQTT §1.5.4: well-formed UTF-8 without U+0000.</summary>
    public string ReadString(string field)
    {
        var bytes = ReadBinary();
        string value;
        try
        {
            value = StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new MqttProtocolException(ReasonCode.MalformedPacket, $"{field} is not well-formed UTF-8");
        }

        if (value.Contains('\0', StringComparison.Ordinal))
        {
            throw new MqttProtocolException(ReasonCode.MalformedPacket, $"{field} contains U+0000");
        }

        return value;
    }

    public ReadOnlySpan<byte> ReadRest()
    {
        var rest = _span[_position..];
        _position = _span.Length;
        return rest;
    }

    public ReadOnlySpan<byte> Slice(int length)
    {
        Need(length);
        var value = _span.Slice(_position, length);
        _position += length;
        return value;
    }

    private readonly void Need(int count)
    {
        if (_span.Length - _position < count)
        {
            throw new MqttProtocolException(ReasonCode.MalformedPacket, "packet ends before its fields do");
        }
    }
}
