namespace Trellis.Coap;

/// <summary>A Block1 or Block2 value (RFC 7959 §2.2): block number, more flag, size exponent (size = 2^(SZX+4)).</summary>
public readonly record struct CoapBlock(uint Number, bool More, int SizeExponent)
{
    /// <summary>SZX 7 is reserved (RFC 7959 §2.2): a request carrying it is answered 4.00.</summary>
    public bool IsValid => SizeExponent is >= 0 and <= 6 && Number < (1u << 20);

    public int Size => 1 << (SizeExponent + 4);

    public long Offset => (long)Number * Size;

    public static CoapBlock FromValue(uint value) => new(value >> 4, ((value >> 3) & 1) == 1, (int)(value & 7));

    /// <summary>A Block1 or Block2 option's value (at most 3 bytes), or null when it is longer or not valid.</summary>
    public static CoapBlock? Read(CoapOption option) =>
        option.Value.Length <= 3 && FromValue(option.AsValue()!.Value) is { IsValid: true } block ? block : null;

    public uint Value => (Number << 4) | (More ? 8u : 0u) | (uint)SizeExponent;

    public CoapOption ToOption(ushort number) => CoapOption.Of(number, Value);
}
