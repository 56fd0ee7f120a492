using CsCheck;
using Trellis.Gateway.Modbus;

namespace Trellis.UnitTests.Gateway;

public sealed class ModbusTests
{
    [Theory]
    [InlineData(ByteOrder.ABCD, new ushort[] { 0x4148, 0x0000 })]
    [InlineData(ByteOrder.CDAB, new ushort[] { 0x0000, 0x4148 })]
    [InlineData(ByteOrder.BADC, new ushort[] { 0x4841, 0x0000 })]
    [InlineData(ByteOrder.DCBA, new ushort[] { 0x0000, 0x4841 })]
    public void A_float_is_read_in_each_byte_order(ByteOrder order, ushort[] registers)
    {
        Assert.Equal(12.5, RegisterCodec.Decode(registers, ModbusDataType.Float32, order));
        Assert.Equal(registers, RegisterCodec.Encode(12.5, ModbusDataType.Float32, order));
    }

    [Fact]
    public void Integers_keep_their_sign_and_width()
    {
        Assert.Equal(-2, RegisterCodec.Decode([0xFFFF, 0xFFFE], ModbusDataType.Int32, ByteOrder.ABCD));
        Assert.Equal(4_294_967_294, RegisterCodec.Decode([0xFFFF, 0xFFFE], ModbusDataType.UInt32, ByteOrder.ABCD));
        Assert.Equal(-7, RegisterCodec.Decode([0xFFF9], ModbusDataType.Int16, ByteOrder.ABCD));
        Assert.Equal(0xF9FF, RegisterCodec.Decode([0xFFF9], ModbusDataType.UInt16, ByteOrder.BADC));
        Assert.Equal(0x0102030405060708, RegisterCodec.Decode([0x0708, 0x0506, 0x0304, 0x0102], ModbusDataType.Int64, ByteOrder.CDAB));
        Assert.Throws<ArgumentOutOfRangeException>(() => RegisterCodec.Encode(70_000, ModbusDataType.Int16, ByteOrder.ABCD));
        Assert.Throws<ArgumentOutOfRangeException>(() => RegisterCodec.Encode(-1, ModbusDataType.UInt32, ByteOrder.ABCD));
        Assert.Throws<ArgumentException>(() => RegisterCodec.Decode([1], ModbusDataType.Float32, ByteOrder.ABCD));
    }

    [Fact]
    public void Every_type_and_order_survives_an_encode_and_decode_round_trip() =>
        Gen.Select(Gen.Enum<ModbusDataType>(), Gen.Enum<ByteOrder>(), Gen.Int[-30_000, 30_000], (type, order, n) => (type, order, n))
            .Sample(t =>
            {
                var value = t.type is ModbusDataType.UInt16 or ModbusDataType.UInt32 or ModbusDataType.UInt64 or ModbusDataType.Bool ? Math.Abs(t.n) % (t.type == ModbusDataType.Bool ? 2 : 30_001) : t.n;
                return RegisterCodec.Decode(RegisterCodec.Encode(value, t.type, t.order), t.type, t.order) == value;
            });

    [Fact]
    public void Requests_are_framed_as_the_specification_shows()
    {
        // Modbus Application Protocol §6.3's example (read holding registers 108-110), in an MBAP header.
        Assert.Equal("000100000006110300 6B0003".Replace(" ", string.Empty, StringComparison.Ordinal), Convert.ToHexString(ModbusFrame.Read(1, 0x11, 3, 0x006B, 3)));
        Assert.Equal("00020000000601060001ABCD", Convert.ToHexString(ModbusFrame.WriteSingleRegister(2, 1, 1, 0xABCD)));
        Assert.Equal("0003000000060105000AFF00", Convert.ToHexString(ModbusFrame.WriteSingleCoil(3, 1, 10, true)));
        Assert.Equal("00040000000B011000000002040001FFFE", Convert.ToHexString(ModbusFrame.WriteMultipleRegisters(4, 1, 0, [0x0001, 0xFFFE])));
        Assert.Equal("000500000009010F0013000A02CD01", Convert.ToHexString(ModbusFrame.WriteMultipleCoils(5, 1, 19, [true, false, true, true, false, false, true, true, true, false])));
        Assert.Throws<ArgumentOutOfRangeException>(() => ModbusFrame.Read(1, 1, 3, 0, 126));
        Assert.Throws<ArgumentOutOfRangeException>(() => ModbusFrame.Read(1, 1, 1, 0, 2001));
        Assert.Throws<ArgumentOutOfRangeException>(() => ModbusFrame.Read(1, 1, 3, 65_535, 2));
    }

    [Fact]
    public void Responses_are_checked_field_by_field()
    {
        var response = ModbusFrame.Parse(Convert.FromHexString("000100000009110306022B00000064"));
        Assert.Equal((ushort)1, response.Transaction);
        Assert.Equal((byte)0x11, response.Unit);
        Assert.Equal((byte)3, response.Function);
        Assert.Equal(new ushort[] { 0x022B, 0x0000, 0x0064 }, ModbusFrame.Registers(response.Data.Span, 3));
        Assert.Equal([true, false, true, true, false, false, true, true, true, false], ModbusFrame.Bits(Convert.FromHexString("02CD01"), 10));
        Assert.Throws<InvalidDataException>(() => ModbusFrame.Registers(Convert.FromHexString("04022B0000"), 3));
        Assert.Throws<InvalidDataException>(() => ModbusFrame.Length(Convert.FromHexString("00010001000601")));
        Assert.Throws<InvalidDataException>(() => ModbusFrame.Parse(Convert.FromHexString("00010000000911030602")));
        Assert.Equal(0, ModbusFrame.Length(Convert.FromHexString("000100")));
    }

    [Fact]
    public void A_register_map_is_read_with_its_defaults()
    {
        var map = RegisterMap.Parse("""
            {"devices": [{"thing": "t", "host": "h", "points": [
              {"name": "a", "table": "holding", "address": 4, "type": "float32", "order": "cdab", "scale": 0.1, "offset": -5, "writable": true},
              {"name": "b", "table": "coil", "address": 0}]}]}
            """, "map.json");
        var device = Assert.Single(map.Devices);
        Assert.Equal((502, (byte)1, TimeSpan.FromSeconds(1)), (device.Port, device.Unit, device.Interval));
        Assert.Equal(new ModbusPoint("a", ModbusTable.HoldingRegister, 4, ModbusDataType.Float32, ByteOrder.CDAB, 0.1, -5, true), device.Points[0]);
        Assert.Equal(ModbusDataType.Bool, device.Points[1].Type);
    }

    [Theory]
    [InlineData("{\"devices\": [{\"thing\": \"t\", \"host\": \"h\",\n \"points\": [\n {\"name\": \"a\", \"table\": \"holding\", \"address\": 0, \"type\": \"flaot32\"}]}]}", "line 3: type \"flaot32\" is not")]
    [InlineData("{\"devices\": [{\"thing\": \"t\", \"host\": \"h\",\n \"points\": [\n {\"name\": \"a\", \"table\": \"registers\", \"address\": 0}]}]}", "line 3: table \"registers\"")]
    [InlineData("{\"devices\": [{\"thing\": \"t\", \"host\": \"h\",\n \"points\": [\n {\"name\": \"a\", \"table\": \"holding\", \"address\": 70000}]}]}", "line 3: expected a register or coil address")]
    [InlineData("{\"devices\": [\n{\"host\": \"h\", \"points\": [{\"name\": \"a\", \"table\": \"coil\", \"address\": 0}]}]}", "line 2: a device needs \"thing\"")]
    [InlineData("{\"devices\": [{\"thing\": \"t\", \"host\": \"h\", \"points\": [\n{\"name\": \"a\", \"table\": \"input\", \"address\": 0, \"writable\": true}]}]}", "line 2: point \"a\": only coils and holding registers")]
    [InlineData("{\"devices\": [{\"thing\": \"t\", \"host\": \"h\", \"points\": [\n{\"name\": \"a\", \"table\": \"coil\", \"address\": 0, \"type\": \"int16\"}]}]}", "line 2: point \"a\": coils and discrete inputs are bool")]
    [InlineData("{\"devices\": [{\"thing\": \"t\", \"host\": \"h\", \"points\": [\n{\"name\": \"a\", \"table\": \"coil\", \"address\": 0},\n{\"name\": \"a\", \"table\": \"coil\", \"address\": 1}]}]}", "line 3: point \"a\" is named twice")]
    [InlineData("{\"devices\": [{\"thing\": \"t\", \"host\": \"h\", \"points\": [\n{\"name\": \"a\", \"table\": \"coil\", \"adress\": 0}]}]}", "line 2: unknown member \"adress\"")]
    [InlineData("{\"devices\": [\n\n{\"thing\": \"t\" \"host\": \"h\"}]}", "line 3: not valid JSON")]
    [InlineData("{\"devices\": [{\"thing\": \"t\", \"host\": \"h\", \"unit\": 300, \"points\": []}]}", "line 1: expected a unit id")]
    public void A_malformed_register_map_is_refused_naming_its_line(string json, string expected)
    {
        var refused = Assert.Throws<RegisterMapException>(() => RegisterMap.Parse(json, "map.json"));
        Assert.StartsWith("map.json, ", refused.Message, StringComparison.Ordinal);
        Assert.Contains(expected, refused.Message, StringComparison.Ordinal);
    }
}
