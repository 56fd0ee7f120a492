using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Trellis.Gateway.Modbus;

/// <summary>Where a point lives in a Modbus device.</summary>
public enum ModbusTable
{
    Coil,
    DiscreteInput,
    InputRegister,
    HoldingRegister,
}

/// <summary>One value of a device: its table and address, how it is encoded, and the scaling to engineering units (value = raw × scale + offset).</summary>
public sealed record ModbusPoint(string Name, ModbusTable Table, ushort Address, ModbusDataType Type, ByteOrder Order, double Scale, double Offset, bool Writable)
{
    /// <summary>The registers (or bits) it takes.</summary>
    public int Count => Table is ModbusTable.Coil or ModbusTable.DiscreteInput ? 1 : RegisterCodec.Registers(Type);
}

/// <summary>One Modbus device polled for one leaf thing.</summary>
public sealed record ModbusDevice(string Thing, string Host, int Port, byte Unit, TimeSpan Interval, TimeSpan Timeout, IReadOnlyList<ModbusPoint> Points);

/// <summary>A register map was refused; the message names the file, the line and what to change.</summary>
public sealed class RegisterMapException(string message) : Exception(message)
{
    public RegisterMapException()
        : this("The register map is not valid.")
    {
    }

    public RegisterMapException(string message, Exception inner)
        : this(message + " " + inner.Message)
    {
    }
}

/// <summary>
/// The gateway's register map (docs/gateway.md): a JSON file (comments and trailing commas allowed)
/// mapping each Modbus device's registers and coils to a leaf thing's telemetry:
/// <code>
/// {"devices": [{"thing": "press-1", "host": "10.0.0.5", "port": 502, "unit": 1, "intervalMs": 1000, "timeoutMs": 1000,
///   "points": [{"name": "temperature", "table": "holding", "address": 0, "type": "float32", "order": "ABCD", "scale": 1, "offset": 0, "writable": true},
///              {"name": "running", "table": "coil", "address": 0}]}]}
/// </code>
/// Every mistake is refused at start with the line it is on.
/// </summary>
public sealed class RegisterMap
{
    private RegisterMap(IReadOnlyList<ModbusDevice> devices) => Devices = devices;

    public IReadOnlyList<ModbusDevice> Devices { get; }

    public static RegisterMap Load(string path) => Parse(File.ReadAllText(path), path);

    public static RegisterMap Parse(string json, string source)
    {
        var bytes = Encoding.UTF8.GetBytes(json);
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        var parser = new Parser(bytes, source);
        try
        {
            return new RegisterMap(parser.Map(ref reader));
        }
        catch (JsonException e)
        {
            throw new RegisterMapException($"{source}, line {(e.LineNumber ?? 0) + 1}: not valid JSON ({e.Message.Split(" Path:")[0].Split(" LineNumber:")[0]})");
        }
    }

    private sealed class Parser(byte[] bytes, string source)
    {
        private static readonly Dictionary<string, ModbusTable> Tables = new(StringComparer.OrdinalIgnoreCase)
        {
            ["coil"] = ModbusTable.Coil,
            ["discrete"] = ModbusTable.DiscreteInput,
            ["input"] = ModbusTable.InputRegister,
            ["holding"] = ModbusTable.HoldingRegister,
        };

        public List<ModbusDevice> Map(ref Utf8JsonReader reader)
        {
            Expect(ref reader, JsonTokenType.StartObject, "the map is a JSON object with a \"devices\" array");
            List<ModbusDevice>? devices = null;
            while (Next(ref reader) == JsonTokenType.PropertyName)
            {
                var name = reader.GetString()!;
                if (name != "devices")
                {
                    throw Error(reader, $"unknown member \"{name}\": the map has only \"devices\"");
                }

                Expect(ref reader, JsonTokenType.StartArray, "\"devices\" is an array of devices");
                devices = [];
                var things = new HashSet<string>(StringComparer.Ordinal);
                while (Next(ref reader) == JsonTokenType.StartObject)
                {
                    var line = Line(reader);
                    var device = Device(ref reader, line);
                    if (!things.Add(device.Thing))
                    {
                        throw new RegisterMapException($"{source}, line {line}: thing \"{device.Thing}\" has a device already; one device per leaf thing");
                    }

                    devices.Add(device);
                }

                if (reader.TokenType != JsonTokenType.EndArray)
                {
                    throw Error(reader, "each device is a JSON object");
                }
            }

            return devices ?? throw new RegisterMapException($"{source}, line 1: the map needs a \"devices\" array");
        }

        private ModbusDevice Device(ref Utf8JsonReader reader, int line)
        {
            string? thing = null, host = null;
            int port = 502, interval = 1000, timeout = 1000;
            byte unit = 1;
            List<ModbusPoint>? points = null;
            while (Next(ref reader) == JsonTokenType.PropertyName)
            {
                var name = reader.GetString()!;
                Next(ref reader);
                switch (name)
                {
                    case "thing": thing = Text(reader, "a thing's name"); break;
                    case "host": host = Text(reader, "a host name or address"); break;
                    case "port": port = (int)Number(reader, 1, 65_535, "a TCP port"); break;
                    case "unit": unit = (byte)Number(reader, 0, 255, "a unit id (0-255)"); break;
                    case "intervalMs": interval = (int)Number(reader, 10, 86_400_000, "a polling interval in milliseconds (at least 10)"); break;
                    case "timeoutMs": timeout = (int)Number(reader, 10, 600_000, "a time-out in milliseconds (at least 10)"); break;
                    case "points":
                        if (reader.TokenType != JsonTokenType.StartArray)
                        {
                            throw Error(reader, "\"points\" is an array");
                        }

                        points = [];
                        while (Next(ref reader) == JsonTokenType.StartObject)
                        {
                            var point = Point(ref reader, Line(reader));
                            if (points.Any(p => p.Name == point.Name))
                            {
                                throw Error(reader, $"point \"{point.Name}\" is named twice in this device");
                            }

                            points.Add(point);
                        }

                        break;
                    default:
                        throw Error(reader, $"unknown member \"{name}\" of a device: thing, host, port, unit, intervalMs, timeoutMs, points");
                }
            }

            if (thing is null || host is null || points is not { Count: > 0 })
            {
                throw new RegisterMapException($"{source}, line {line}: a device needs \"thing\", \"host\" and at least one point");
            }

            return new ModbusDevice(thing, host, port, unit, TimeSpan.FromMilliseconds(interval), TimeSpan.FromMilliseconds(timeout), points);
        }

        private ModbusPoint Point(ref Utf8JsonReader reader, int line)
        {
            string? name = null;
            ModbusTable? table = null;
            int? address = null;
            ModbusDataType? type = null;
            var order = ByteOrder.ABCD;
            double scale = 1, offset = 0;
            var writable = false;
            while (Next(ref reader) == JsonTokenType.PropertyName)
            {
                var member = reader.GetString()!;
                Next(ref reader);
                switch (member)
                {
                    case "name": name = Text(reader, "the telemetry field's name"); break;
                    case "table":
                        table = Tables.TryGetValue(Text(reader, "coil, discrete, input or holding"), out var t) ? t
                            : throw Error(reader, $"table \"{reader.GetString()}\" is not coil, discrete, input or holding");
                        break;
                    case "address": address = (int)Number(reader, 0, 65_535, "a register or coil address (0-65535, as on the wire)"); break;
                    case "type":
                        type = Enum.TryParse<ModbusDataType>(Text(reader, "a data type"), ignoreCase: true, out var dt) ? dt
                            : throw Error(reader, $"type \"{reader.GetString()}\" is not bool, int16, uint16, int32, uint32, int64, uint64, float32 or float64");
                        break;
                    case "order":
                        order = Enum.TryParse<ByteOrder>(Text(reader, "a byte order"), ignoreCase: true, out var o) ? o
                            : throw Error(reader, $"order \"{reader.GetString()}\" is not ABCD, CDAB, BADC or DCBA");
                        break;
                    case "scale": scale = Number(reader, double.MinValue, double.MaxValue, "a number"); break;
                    case "offset": offset = Number(reader, double.MinValue, double.MaxValue, "a number"); break;
                    case "writable":
                        writable = reader.TokenType is JsonTokenType.True or JsonTokenType.False ? reader.GetBoolean() : throw Error(reader, "\"writable\" is true or false");
                        break;
                    default:
                        throw Error(reader, $"unknown member \"{member}\" of a point: name, table, address, type, order, scale, offset, writable");
                }
            }

            if (name is null || table is null || address is null)
            {
                throw new RegisterMapException($"{source}, line {line}: a point needs \"name\", \"table\" and \"address\"");
            }

            var bits = table is ModbusTable.Coil or ModbusTable.DiscreteInput;
            var kind = type ?? (bits ? ModbusDataType.Bool : ModbusDataType.UInt16);
            if (bits != (kind == ModbusDataType.Bool))
            {
                throw new RegisterMapException($"{source}, line {line}: point \"{name}\": coils and discrete inputs are bool, registers are numbers, not {kind}");
            }

            if (address + RegisterCodec.Registers(kind) > 65_536)
            {
                throw new RegisterMapException($"{source}, line {line}: point \"{name}\" ({kind} at {address}) runs past address 65535");
            }

            if (writable && table is ModbusTable.DiscreteInput or ModbusTable.InputRegister)
            {
                throw new RegisterMapException($"{source}, line {line}: point \"{name}\": only coils and holding registers can be written");
            }

            return new ModbusPoint(name, table.Value, (ushort)address, kind, order, scale, offset, writable);
        }

        private static JsonTokenType Next(ref Utf8JsonReader reader) => reader.Read() ? reader.TokenType : JsonTokenType.None;

        private void Expect(ref Utf8JsonReader reader, JsonTokenType type, string what)
        {
            if (Next(ref reader) != type)
            {
                throw Error(reader, what);
            }
        }

        private string Text(Utf8JsonReader reader, string what) =>
            reader.TokenType == JsonTokenType.String && reader.GetString() is { Length: > 0 } text ? text : throw Error(reader, $"expected {what} (a non-empty string)");

        private double Number(Utf8JsonReader reader, double min, double max, string what) =>
            reader.TokenType == JsonTokenType.Number && reader.TryGetDouble(out var n) && n >= min && n <= max && (min == double.MinValue || n == Math.Floor(n))
                ? n
                : throw Error(reader, $"expected {what}, not {Raw(reader)}");

        private static string Raw(Utf8JsonReader reader) =>
            reader.TokenType is JsonTokenType.String ? $"\"{reader.GetString()}\"" : reader.TokenType is JsonTokenType.Number ? reader.GetDouble().ToString(CultureInfo.InvariantCulture) : reader.TokenType.ToString();

        private RegisterMapException Error(Utf8JsonReader reader, string message) => new($"{source}, line {Line(reader)}: {message}");

        private int Line(Utf8JsonReader reader) => 1 + bytes.AsSpan(0, (int)Math.Min(reader.TokenStartIndex, bytes.Length)).Count((byte)'\n');
    }
}
