using System.Buffers.Binary;

namespace Trellis.Gateway.Modbus;

/// <summary>How a value is laid out in registers (or a coil's bit).</summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1720:Identifier contains type name", Justification = "These are the data types' names in register maps and Modbus tools (int16, float32 …).")]
public enum ModbusDataType
{
    Bool,
    Int16,
    UInt16,
    Int32,
    UInt32,
    Int64,
    UInt64,
    Float32,
    Float64,
}

/// <summary>
/// The order of a multi-register value's bytes, named as the field does for 32 bits: ABCD is
/// Modbus's own big-endian (high word first, high byte first); CDAB swaps the words; BADC swaps the
/// bytes in each word; DCBA is little-endian. For 64 bits the same rule applies to four words.
/// </summary>
public enum ByteOrder
{
    ABCD,
    CDAB,
    BADC,
    DCBA,
}

/// <summary>Decodes registers into numbers and encodes numbers into registers, pure.</summary>
public static class RegisterCodec
{
    /// <summary>How many registers a type takes (a bool takes one coil or discrete input instead).</summary>
    public static int Registers(ModbusDataType type) => type switch
    {
        ModbusDataType.Bool or ModbusDataType.Int16 or ModbusDataType.UInt16 => 1,
        ModbusDataType.Int32 or ModbusDataType.UInt32 or ModbusDataType.Float32 => 2,
        _ => 4,
    };

    public static double Decode(ReadOnlySpan<ushort> registers, ModbusDataType type, ByteOrder order)
    {
        var count = Registers(type);
        if (registers.Length != count)
        {
            throw new ArgumentException($"A {type} takes {count} registers, not {registers.Length}.", nameof(registers));
        }

        Span<byte> bytes = stackalloc byte[2 * count];
        ToBigEndian(registers, order, bytes);
        return type switch
        {
            ModbusDataType.Bool => registers[0] != 0 ? 1 : 0,
            ModbusDataType.Int16 => BinaryPrimitives.ReadInt16BigEndian(bytes),
            ModbusDataType.UInt16 => BinaryPrimitives.ReadUInt16BigEndian(bytes),
            ModbusDataType.Int32 => BinaryPrimitives.ReadInt32BigEndian(bytes),
            ModbusDataType.UInt32 => BinaryPrimitives.ReadUInt32BigEndian(bytes),
            ModbusDataType.Int64 => BinaryPrimitives.ReadInt64BigEndian(bytes),
            ModbusDataType.UInt64 => BinaryPrimitives.ReadUInt64BigEndian(bytes),
            ModbusDataType.Float32 => BinaryPrimitives.ReadSingleBigEndian(bytes),
            _ => BinaryPrimitives.ReadDoubleBigEndian(bytes),
        };
    }

    /// <summary>The registers that hold <paramref name="value"/>; an integer type refuses a value it cannot hold.</summary>
    public static ushort[] Encode(double value, ModbusDataType type, ByteOrder order)
    {
        var count = Registers(type);
        Span<byte> bytes = stackalloc byte[2 * count];
        switch (type)
        {
            case ModbusDataType.Float32:
                BinaryPrimitives.WriteSingleBigEndian(bytes, (float)value);
                break;
            case ModbusDataType.Float64:
                BinaryPrimitives.WriteDoubleBigEndian(bytes, value);
                break;
            default:
                var (min, max) = Range(type);
                var rounded = Math.Round(value);
                if (double.IsNaN(value) || rounded < min || rounded > max)
                {
                    throw new ArgumentOutOfRangeException(nameof(value), value, $"A {type} holds {min} to {max}.");
                }

                var whole = type is ModbusDataType.UInt64 ? unchecked((long)(ulong)rounded) : (long)rounded;
                for (var i = 0; i < bytes.Length; i++)
                {
                    bytes[bytes.Length - 1 - i] = (byte)(whole >> (8 * i));
                }

                break;
        }

        var registers = new ushort[count];
        FromBigEndian(bytes, order, registers);
        return registers;
    }

    private static (double Min, double Max) Range(ModbusDataType type) => type switch
    {
        ModbusDataType.Bool => (0, 1),
        ModbusDataType.Int16 => (short.MinValue, short.MaxValue),
        ModbusDataType.UInt16 => (0, ushort.MaxValue),
        ModbusDataType.Int32 => (int.MinValue, int.MaxValue),
        ModbusDataType.UInt32 => (0, uint.MaxValue),
        ModbusDataType.Int64 => (long.MinValue, long.MaxValue),
        _ => (0, ulong.MaxValue),
    };

    /// <summary>Registers in wire order to the value's bytes, most significant first.</summary>
    private static void ToBigEndian(ReadOnlySpan<ushort> registers, ByteOrder order, Span<byte> bytes)
    {
        var n = registers.Length;
        for (var i = 0; i < n; i++)
        {
            var word = registers[order is ByteOrder.CDAB or ByteOrder.DCBA ? n - 1 - i : i];
            var (high, low) = ((byte)(word >> 8), (byte)word);
            (bytes[2 * i], bytes[(2 * i) + 1]) = order is ByteOrder.BADC or ByteOrder.DCBA ? (low, high) : (high, low);
        }
    }

    private static void FromBigEndian(ReadOnlySpan<byte> bytes, ByteOrder order, Span<ushort> registers)
    {
        var n = registers.Length;
        for (var i = 0; i < n; i++)
        {
            var (high, low) = order is ByteOrder.BADC or ByteOrder.DCBA ? (bytes[(2 * i) + 1], bytes[2 * i]) : (bytes[2 * i], bytes[(2 * i) + 1]);
            registers[order is ByteOrder.CDAB or ByteOrder.DCBA ? n - 1 - i : i] = (ushort)((high << 8) | low);
        }
    }
}
