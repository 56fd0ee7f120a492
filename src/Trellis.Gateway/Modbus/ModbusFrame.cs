using System.Buffers.Binary;

namespace Trellis.Gateway.Modbus;

/// <summary>The Modbus functions the client uses (Modbus Application Protocol v1.1b3 §6).</summary>
public static class ModbusFunction
{
    public const byte ReadCoils = 1;
    public const byte ReadDiscreteInputs = 2;
    public const byte ReadHoldingRegisters = 3;
    public const byte ReadInputRegisters = 4;
    public const byte WriteSingleCoil = 5;
    public const byte WriteSingleRegister = 6;
    public const byte WriteMultipleCoils = 15;
    public const byte WriteMultipleRegisters = 16;
}

/// <summary>A response's MBAP header and PDU (Modbus Messaging on TCP/IP v1.0b §3.1.3).</summary>
public readonly record struct ModbusResponse(ushort Transaction, byte Unit, byte Function, ReadOnlyMemory<byte> Data);

/// <summary>
/// Modbus TCP framing, pure: the MBAP header (transaction id, protocol 0, length, unit id) and the
/// PDUs of the functions the client uses. Responses are checked field by field; nothing here does I/O.
/// </summary>
public static class ModbusFrame
{
    /// <summary>MBAP header (7 bytes) plus the largest PDU (253 bytes).</summary>
    public const int MaxAdu = 260;

    /// <summary>The protocol's limits on one request (§6.1–6.12).</summary>
    public const int MaxReadBits = 2000;
    public const int MaxReadRegisters = 125;
    public const int MaxWriteBits = 1968;
    public const int MaxWriteRegisters = 123;

    /// <summary>A read request (functions 1–4): start address and quantity.</summary>
    public static byte[] Read(ushort transaction, byte unit, byte function, ushort address, ushort count)
    {
        var max = function is ModbusFunction.ReadCoils or ModbusFunction.ReadDiscreteInputs ? MaxReadBits : MaxReadRegisters;
        if (count == 0 || count > max)
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, $"Function {function} reads 1 to {max} items at a time.");
        }

        if (address + count > 65_536)
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, $"Addresses {address}..{address + count - 1} run past 65535.");
        }

        Span<byte> pdu = [function, 0, 0, 0, 0];
        BinaryPrimitives.WriteUInt16BigEndian(pdu[1..], address);
        BinaryPrimitives.WriteUInt16BigEndian(pdu[3..], count);
        return Adu(transaction, unit, pdu);
    }

    public static byte[] WriteSingleCoil(ushort transaction, byte unit, ushort address, bool value) =>
        Adu(transaction, unit, [ModbusFunction.WriteSingleCoil, (byte)(address >> 8), (byte)address, value ? (byte)0xFF : (byte)0, 0]);

    public static byte[] WriteSingleRegister(ushort transaction, byte unit, ushort address, ushort value) =>
        Adu(transaction, unit, [ModbusFunction.WriteSingleRegister, (byte)(address >> 8), (byte)address, (byte)(value >> 8), (byte)value]);

    public static byte[] WriteMultipleRegisters(ushort transaction, byte unit, ushort address, ReadOnlySpan<ushort> values)
    {
        if (values.Length is 0 or > MaxWriteRegisters)
        {
            throw new ArgumentOutOfRangeException(nameof(values), values.Length, $"Function 16 writes 1 to {MaxWriteRegisters} registers at a time.");
        }

        var pdu = new byte[6 + (2 * values.Length)];
        pdu[0] = ModbusFunction.WriteMultipleRegisters;
        BinaryPrimitives.WriteUInt16BigEndian(pdu.AsSpan(1), address);
        BinaryPrimitives.WriteUInt16BigEndian(pdu.AsSpan(3), (ushort)values.Length);
        pdu[5] = (byte)(2 * values.Length);
        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteUInt16BigEndian(pdu.AsSpan(6 + (2 * i)), values[i]);
        }

        return Adu(transaction, unit, pdu);
    }

    public static byte[] WriteMultipleCoils(ushort transaction, byte unit, ushort address, ReadOnlySpan<bool> values)
    {
        if (values.Length is 0 or > MaxWriteBits)
        {
            throw new ArgumentOutOfRangeException(nameof(values), values.Length, $"Function 15 writes 1 to {MaxWriteBits} coils at a time.");
        }

        var bytes = (values.Length + 7) / 8;
        var pdu = new byte[6 + bytes];
        pdu[0] = ModbusFunction.WriteMultipleCoils;
        BinaryPrimitives.WriteUInt16BigEndian(pdu.AsSpan(1), address);
        BinaryPrimitives.WriteUInt16BigEndian(pdu.AsSpan(3), (ushort)values.Length);
        pdu[5] = (byte)bytes;
        for (var i = 0; i < values.Length; i++)
        {
            if (values[i])
            {
                pdu[6 + (i / 8)] |= (byte)(1 << (i % 8));
            }
        }

        return Adu(transaction, unit, pdu);
    }

    /// <summary>
    /// The length of the ADU at the start of <paramref name="buffer"/> once its header is in (7 + the
    /// MBAP length − 1), or 0 while fewer than 7 bytes are; a header that cannot be Modbus throws.
    /// </summary>
    public static int Length(ReadOnlySpan<byte> buffer)
    {
        if (buffer.Length < 7)
        {
            return 0;
        }

        var protocol = BinaryPrimitives.ReadUInt16BigEndian(buffer[2..]);
        var length = BinaryPrimitives.ReadUInt16BigEndian(buffer[4..]);
        if (protocol != 0 || length is < 2 or > 254)
        {
            throw new InvalidDataException($"Not a Modbus TCP frame: protocol id {protocol}, length {length}.");
        }

        return 6 + length;
    }

    /// <summary>Splits a whole ADU into its header fields and the PDU's data (after the function code).</summary>
    public static ModbusResponse Parse(ReadOnlyMemory<byte> adu)
    {
        var span = adu.Span;
        if (Length(span) != adu.Length)
        {
            throw new InvalidDataException("A Modbus TCP frame's length does not match its MBAP header.");
        }

        return new ModbusResponse(BinaryPrimitives.ReadUInt16BigEndian(span), span[6], span[7], adu[8..]);
    }

    /// <summary>Bits from a read-coils or read-discrete-inputs response's data (byte count, then packed bits, least significant first).</summary>
    public static bool[] Bits(ReadOnlySpan<byte> data, int count)
    {
        if (data.Length < 1 || data[0] != (count + 7) / 8 || data.Length != 1 + data[0])
        {
            throw new InvalidDataException($"A bit response of {data.Length} bytes does not carry {count} bits.");
        }

        var bits = new bool[count];
        for (var i = 0; i < count; i++)
        {
            bits[i] = (data[1 + (i / 8)] & (1 << (i % 8))) != 0;
        }

        return bits;
    }

    /// <summary>Registers from a read-registers response's data (byte count, then big-endian words).</summary>
    public static ushort[] Registers(ReadOnlySpan<byte> data, int count)
    {
        if (data.Length < 1 || data[0] != 2 * count || data.Length != 1 + data[0])
        {
            throw new InvalidDataException($"A register response of {data.Length} bytes does not carry {count} registers.");
        }

        var registers = new ushort[count];
        for (var i = 0; i < count; i++)
        {
            registers[i] = BinaryPrimitives.ReadUInt16BigEndian(data[(1 + (2 * i))..]);
        }

        return registers;
    }

    private static byte[] Adu(ushort transaction, byte unit, ReadOnlySpan<byte> pdu)
    {
        var adu = new byte[7 + pdu.Length];
        BinaryPrimitives.WriteUInt16BigEndian(adu, transaction);
        BinaryPrimitives.WriteUInt16BigEndian(adu.AsSpan(4), (ushort)(pdu.Length + 1));
        adu[6] = unit;
        pdu.CopyTo(adu.AsSpan(7));
        return adu;
    }
}
