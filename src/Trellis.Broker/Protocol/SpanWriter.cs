using System.Buffers.Binary;
using System.Text;

namespace Trellis.Broker.Protocol;

/// <summary>Sequential big-endian writes into a span the caller sized.</summary>
internal ref struct SpanWriter(Span<byte> span)
{
    private readonly Span<byte> _span = span;

    public int Written { get; private set; }

    public void Byte(byte value) => _span[Written++] = value;

    public void UInt16(ushort value)
    {
        BinaryPrimitives.WriteUInt16BigEndian(_span[Written..], value);
        Written += 2;
    }

    public void UInt32(uint value)
    {
        BinaryPrimitives.WriteUInt32BigEndian(_span[Written..], value);
        Written += 4;
    }

    public void VarInt(int value)
    {
        do
        {
            var b = (byte)(value & 0x7F);
            value >>= 7;
            if (value > 0)
            {
                b |= 0x80;
            }

            _span[Written++] = b;
        }
        while (value > 0);
    }

    public void Utf8(string value) => Written += Encoding.UTF8.GetBytes(value, _span[Written..]);

    public void String(string value)
    {
        var length = Encoding.UTF8.GetByteCount(value);
        UInt16((ushort)length);
        Utf8(value);
    }

    public void Bytes(ReadOnlySpan<byte> value)
    {
        value.CopyTo(_span[Written..]);
        Written += value.Length;
    }
}
