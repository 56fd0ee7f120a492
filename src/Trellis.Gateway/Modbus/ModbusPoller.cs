namespace Trellis.Gateway.Modbus;

/// <summary>Reads and writes a device's points by the register map: raw registers to engineering units and back.</summary>
public static class ModbusPoller
{
    /// <summary>Every point of the device, scaled (value = raw × scale + offset); a bool is 1 or 0.</summary>
    public static async Task<Dictionary<string, double>> ReadAsync(ModbusTcpClient client, ModbusDevice device, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(device);
        var values = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var point in device.Points)
        {
            var count = (ushort)point.Count;
            var raw = point.Table switch
            {
                ModbusTable.Coil => (await client.ReadCoilsAsync(device.Unit, point.Address, 1, ct))[0] ? 1 : 0,
                ModbusTable.DiscreteInput => (await client.ReadDiscreteInputsAsync(device.Unit, point.Address, 1, ct))[0] ? 1 : 0,
                ModbusTable.InputRegister => RegisterCodec.Decode(await client.ReadInputRegistersAsync(device.Unit, point.Address, count, ct), point.Type, point.Order),
                _ => RegisterCodec.Decode(await client.ReadHoldingRegistersAsync(device.Unit, point.Address, count, ct), point.Type, point.Order),
            };
            values[point.Name] = (raw * point.Scale) + point.Offset;
        }

        return values;
    }

    /// <summary>Writes a value in engineering units to a writable point (the inverse of its scaling).</summary>
    public static async Task WriteAsync(ModbusTcpClient client, ModbusDevice device, ModbusPoint point, double value, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(point);
        if (!point.Writable)
        {
            throw new InvalidOperationException($"Point \"{point.Name}\" of {device.Thing} is not writable in the register map.");
        }

        var raw = (value - point.Offset) / point.Scale;
        if (point.Table == ModbusTable.Coil)
        {
            await client.WriteSingleCoilAsync(device.Unit, point.Address, raw != 0, ct);
            return;
        }

        var registers = RegisterCodec.Encode(raw, point.Type, point.Order);
        if (registers.Length == 1)
        {
            await client.WriteSingleRegisterAsync(device.Unit, point.Address, registers[0], ct);
        }
        else
        {
            await client.WriteMultipleRegistersAsync(device.Unit, point.Address, registers, ct);
        }
    }
}
