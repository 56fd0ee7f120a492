using System.Net.Sockets;

namespace Trellis.Gateway.Modbus;

/// <summary>
/// A Modbus TCP client for one device (one connection, one request at a time, as most PLCs and
/// gateways expect). Each answer is matched to its request by transaction id, unit and function;
/// an exception response throws <see cref="ModbusException"/>; a device that does not answer
/// within the time-out throws <see cref="TimeoutException"/> and the connection is dropped (a late
/// answer would belong to no request), to be made again by the next request.
/// </summary>
public sealed class ModbusTcpClient(string host, int port, TimeSpan timeout) : IAsyncDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly byte[] _buffer = new byte[ModbusFrame.MaxAdu];
    private Socket? _socket;
    private ushort _transaction;

    public string Host => host;

    public int Port => port;

    public async Task<bool[]> ReadCoilsAsync(byte unit, ushort address, ushort count, CancellationToken ct = default) =>
        ModbusFrame.Bits((await ExchangeAsync(t => ModbusFrame.Read(t, unit, ModbusFunction.ReadCoils, address, count), unit, ModbusFunction.ReadCoils, ct)).Span, count);

    public async Task<bool[]> ReadDiscreteInputsAsync(byte unit, ushort address, ushort count, CancellationToken ct = default) =>
        ModbusFrame.Bits((await ExchangeAsync(t => ModbusFrame.Read(t, unit, ModbusFunction.ReadDiscreteInputs, address, count), unit, ModbusFunction.ReadDiscreteInputs, ct)).Span, count);

    public async Task<ushort[]> ReadHoldingRegistersAsync(byte unit, ushort address, ushort count, CancellationToken ct = default) =>
        ModbusFrame.Registers((await ExchangeAsync(t => ModbusFrame.Read(t, unit, ModbusFunction.ReadHoldingRegisters, address, count), unit, ModbusFunction.ReadHoldingRegisters, ct)).Span, count);

    public async Task<ushort[]> ReadInputRegistersAsync(byte unit, ushort address, ushort count, CancellationToken ct = default) =>
        ModbusFrame.Registers((await ExchangeAsync(t => ModbusFrame.Read(t, unit, ModbusFunction.ReadInputRegisters, address, count), unit, ModbusFunction.ReadInputRegisters, ct)).Span, count);

    public Task WriteSingleCoilAsync(byte unit, ushort address, bool value, CancellationToken ct = default) =>
        ExchangeAsync(t => ModbusFrame.WriteSingleCoil(t, unit, address, value), unit, ModbusFunction.WriteSingleCoil, ct);

    public Task WriteSingleRegisterAsync(byte unit, ushort address, ushort value, CancellationToken ct = default) =>
        ExchangeAsync(t => ModbusFrame.WriteSingleRegister(t, unit, address, value), unit, ModbusFunction.WriteSingleRegister, ct);

    public Task WriteMultipleRegistersAsync(byte unit, ushort address, ushort[] values, CancellationToken ct = default) =>
        ExchangeAsync(t => ModbusFrame.WriteMultipleRegisters(t, unit, address, values), unit, ModbusFunction.WriteMultipleRegisters, ct);

    public Task WriteMultipleCoilsAsync(byte unit, ushort address, bool[] values, CancellationToken ct = default) =>
        ExchangeAsync(t => ModbusFrame.WriteMultipleCoils(t, unit, address, values), unit, ModbusFunction.WriteMultipleCoils, ct);

    public async ValueTask DisposeAsync()
    {
        await _gate.WaitAsync();
        try
        {
            Drop();
        }
        finally
        {
            _gate.Release();
            _gate.Dispose();
        }
    }

    /// <summary>Sends one request and reads its answer; the data after the function code, or the exception the device answered.</summary>
    private async Task<ReadOnlyMemory<byte>> ExchangeAsync(Func<ushort, byte[]> request, byte unit, byte function, CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
            deadline.CancelAfter(timeout);
            try
            {
                var socket = _socket ??= await ConnectAsync(deadline.Token);
                var transaction = ++_transaction;
                await socket.SendAsync(request(transaction), SocketFlags.None, deadline.Token);
                var response = ModbusFrame.Parse(await ReadAduAsync(socket, deadline.Token));
                if (response.Transaction != transaction || response.Unit != unit || (response.Function & 0x7F) != function)
                {
                    throw new InvalidDataException($"The Modbus device answered transaction {response.Transaction}, unit {response.Unit}, function {response.Function} to transaction {transaction}, unit {unit}, function {function}.");
                }

                if ((response.Function & 0x80) != 0)
                {
                    throw new ModbusException(function, response.Data.Length == 1 ? response.Data.Span[0] : (byte)0);
                }

                return response.Data.ToArray();
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                Drop();
                throw new TimeoutException($"The Modbus device at {host}:{port} (unit {unit}) did not answer function {function} within {timeout.TotalMilliseconds:0} ms.");
            }
            catch (Exception e) when (e is SocketException or InvalidDataException or IOException and not ModbusException)
            {
                Drop();
                throw;
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<Socket> ConnectAsync(CancellationToken ct)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(host, port, ct);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private async Task<ReadOnlyMemory<byte>> ReadAduAsync(Socket socket, CancellationToken ct)
    {
        var have = 0;
        var need = 7;
        while (have < need)
        {
            var n = await socket.ReceiveAsync(_buffer.AsMemory(have, need - have), SocketFlags.None, ct);
            if (n == 0)
            {
                throw new IOException($"The Modbus device at {host}:{port} closed the connection.");
            }

            have += n;
            if (have >= 7)
            {
                need = ModbusFrame.Length(_buffer.AsSpan(0, have));
            }
        }

        return _buffer.AsMemory(0, need);
    }

    private void Drop()
    {
        _socket?.Dispose();
        _socket = null;
    }
}
