namespace Trellis.Gateway.Modbus;

/// <summary>A Modbus device answered a request with an exception response (Modbus Application Protocol v1.1b3 §7).</summary>
public sealed class ModbusException : IOException
{
    public ModbusException(byte function, byte code)
        : base($"The Modbus device refused function {function} with exception {code} ({Name(code)}).")
    {
        Function = function;
        Code = code;
    }

    public ModbusException()
    {
    }

    public ModbusException(string message)
        : base(message)
    {
    }

    public ModbusException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The function code of the refused request.</summary>
    public byte Function { get; }

    /// <summary>The exception code: 1 illegal function, 2 illegal data address, 3 illegal data value, 4 server device failure …</summary>
    public byte Code { get; }

    public static string Name(byte code) => code switch
    {
        1 => "illegal function",
        2 => "illegal data address",
        3 => "illegal data value",
        4 => "server device failure",
        5 => "acknowledge",
        6 => "server device busy",
        8 => "memory parity error",
        10 => "gateway path unavailable",
        11 => "gateway target device failed to respond",
        _ => "unknown exception code",
    };
}
