using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;

namespace Trellis.Simulator;

/// <summary>
/// The PLC of a simulated production line, served over Modbus TCP (unit 1) for an edge gateway to
/// poll (<c>trellis simulate --profile industrial --plc HOST:PORT</c>): the line's speed, its parts
/// counter, the oven temperature, whether it runs, and a temperature setpoint the oven follows,
/// which the gateway writes from the leaf's desired shadow state. <see cref="RegisterMap"/> is the
/// map `trellis gateway --modbus` reads. Functions 1, 3, 4, 5, 6 and 16; anything else gets the
/// Modbus exception 01 (illegal function), an address outside the tables 02.
/// </summary>
public sealed class SimulatedPlc : IAsyncDisposable
{
    // Holding registers: 0-1 temperature (float32, ABCD), 10-11 setpoint (float32, writable).
    // Input registers: 0 line speed ×10 (uint16), 2-3 parts counter (uint32, ABCD). Coil 0: running.
    private const int Registers = 32;
    private readonly ushort[] _holding = new ushort[Registers];
    private readonly ushort[] _input = new ushort[Registers];
    private readonly bool[] _coils = new bool[8];
    private readonly object _lock = new();
    private readonly TcpListener _listener;
    private readonly Random _random = new(7);
    private readonly CancellationTokenSource _stop = new();
    private Task? _serving;
    private double _temperature = 180;
    private double _parts;
    private long _requests;

    public SimulatedPlc(IPEndPoint at)
    {
        _listener = new TcpListener(at);
        _listener.Server.ExclusiveAddressUse = true;
        SetFloat(_holding, 10, 185f);
    }

    /// <summary>The leaf thing the PLC's values belong to.</summary>
    public const string Thing = "sim-industrial-plc";

    public IPEndPoint LocalEndPoint => (IPEndPoint)_listener.LocalEndpoint;

    /// <summary>Modbus requests answered so far.</summary>
    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>The register map of this PLC, as `trellis gateway --modbus` reads it (docs/gateway.md).</summary>
    public JsonObject RegisterMap(string host, int intervalMs = 1000) => new()
    {
        ["devices"] = new JsonArray(new JsonObject
        {
            ["thing"] = Thing,
            ["host"] = host,
            ["port"] = LocalEndPoint.Port,
            ["unit"] = 1,
            ["intervalMs"] = intervalMs,
            ["points"] = new JsonArray(
                Point("temperature", "holding", 0, "float32"),
                Point("setpoint", "holding", 10, "float32", writable: true),
                Point("lineSpeed", "input", 0, "uint16", scale: 0.1),
                Point("partsCount", "input", 2, "uint32"),
                Point("running", "coil", 0, "bool")),
        }),
    };

    public void Start()
    {
        _listener.Start();
        _serving = Task.WhenAll(AcceptAsync(_stop.Token), ProcessAsync(_stop.Token));
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        if (_serving is not null)
        {
            await _serving.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        _stop.Dispose();
    }

    private static JsonObject Point(string name, string table, int address, string type, double scale = 1, bool writable = false)
    {
        var point = new JsonObject { ["name"] = name, ["table"] = table, ["address"] = address, ["type"] = type };
        if (scale != 1)
        {
            point["scale"] = scale;
        }

        if (writable)
        {
            point["writable"] = true;
        }

        return point;
    }

    /// <summary>The line itself: speed with noise, stops now and then, parts counted, the oven following its setpoint.</summary>
    private async Task ProcessAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(200));
        var stoppedFor = 0;
        while (await TickAsync(timer, ct))
        {
            lock (_lock)
            {
                if (stoppedFor > 0)
                {
                    stoppedFor--;
                }
                else if (_random.NextDouble() < 0.002)
                {
                    stoppedFor = _random.Next(25, 150); // a jam: 5–30 s
                }

                var running = stoppedFor == 0;
                _coils[0] = running;
                var speed = running ? 120 + (_random.NextDouble() * 10) - 5 : 0; // parts per minute
                _input[0] = (ushort)Math.Round(speed * 10);
                _parts += speed / 300; // 200 ms ticks
                var parts = (uint)_parts;
                _input[2] = (ushort)(parts >> 16);
                _input[3] = (ushort)parts;
                var setpoint = GetFloat(_holding, 10);
                _temperature += ((setpoint - _temperature) * 0.05) + ((_random.NextDouble() - 0.5) * 0.4);
                SetFloat(_holding, 0, (float)_temperature);
            }
        }
    }

    private static async Task<bool> TickAsync(PeriodicTimer timer, CancellationToken ct)
    {
        try
        {
            return await timer.WaitForNextTickAsync(ct);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private async Task AcceptAsync(CancellationToken ct)
    {
        var clients = new List<Task>();
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var client = await _listener.AcceptTcpClientAsync(ct);
                clients.Add(ServeAsync(client, ct));
                clients.RemoveAll(t => t.IsCompleted);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }

        await Task.WhenAll(clients).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private async Task ServeAsync(TcpClient client, CancellationToken ct)
    {
        using (client)
        {
            var stream = client.GetStream();
            var header = new byte[7];
            try
            {
                while (!ct.IsCancellationRequested)
                {
                    await stream.ReadExactlyAsync(header, ct);
                    var length = BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(4));
                    if (BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(2)) != 0 || length is < 2 or > 254)
                    {
                        return; // not Modbus: close, as a PLC would
                    }

                    var pdu = new byte[length - 1];
                    await stream.ReadExactlyAsync(pdu, ct);
                    var answer = Answer(pdu);
                    var frame = new byte[7 + answer.Length];
                    header.AsSpan(0, 4).CopyTo(frame);
                    BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(4), (ushort)(answer.Length + 1));
                    frame[6] = header[6];
                    answer.CopyTo(frame, 7);
                    await stream.WriteAsync(frame, ct);
                    Interlocked.Increment(ref _requests);
                }
            }
            catch (Exception e) when (e is EndOfStreamException or IOException or OperationCanceledException or SocketException)
            {
            }
        }
    }

    private byte[] Answer(byte[] pdu)
    {
        var function = pdu[0];
        if (pdu.Length < 5)
        {
            return Exception(function, 3);
        }

        var address = BinaryPrimitives.ReadUInt16BigEndian(pdu.AsSpan(1));
        var value = BinaryPrimitives.ReadUInt16BigEndian(pdu.AsSpan(3));
        lock (_lock)
        {
            switch (function)
            {
                case 1:
                    if (address + value > _coils.Length || value == 0)
                    {
                        return Exception(function, 2);
                    }

                    var bits = new byte[2 + ((value + 7) / 8)];
                    (bits[0], bits[1]) = (function, (byte)(bits.Length - 2));
                    for (var i = 0; i < value; i++)
                    {
                        if (_coils[address + i])
                        {
                            bits[2 + (i / 8)] |= (byte)(1 << (i % 8));
                        }
                    }

                    return bits;
                case 3 or 4:
                    var table = function == 3 ? _holding : _input;
                    if (address + value > table.Length || value == 0)
                    {
                        return Exception(function, 2);
                    }

                    var words = new byte[2 + (value * 2)];
                    (words[0], words[1]) = (function, (byte)(value * 2));
                    for (var i = 0; i < value; i++)
                    {
                        BinaryPrimitives.WriteUInt16BigEndian(words.AsSpan(2 + (i * 2)), table[address + i]);
                    }

                    return words;
                case 5:
                    if (address >= _coils.Length || value is not (0 or 0xFF00))
                    {
                        return Exception(function, address >= _coils.Length ? (byte)2 : (byte)3);
                    }

                    _coils[address] = value == 0xFF00;
                    return pdu[..5];
                case 6:
                    if (address >= _holding.Length)
                    {
                        return Exception(function, 2);
                    }

                    _holding[address] = value;
                    return pdu[..5];
                case 16:
                    if (pdu.Length < 6 + (value * 2) || value == 0 || address + value > _holding.Length)
                    {
                        return Exception(function, address + value > _holding.Length ? (byte)2 : (byte)3);
                    }

                    for (var i = 0; i < value; i++)
                    {
                        _holding[address + i] = BinaryPrimitives.ReadUInt16BigEndian(pdu.AsSpan(6 + (i * 2)));
                    }

                    return pdu[..5];
                default:
                    return Exception(function, 1);
            }
        }
    }

    private static byte[] Exception(byte function, byte code) => [(byte)(function | 0x80), code];

    private static void SetFloat(ushort[] table, int address, float value)
    {
        var raw = BitConverter.SingleToUInt32Bits(value);
        table[address] = (ushort)(raw >> 16);
        table[address + 1] = (ushort)raw;
    }

    private static double GetFloat(ushort[] table, int address) =>
        BitConverter.UInt32BitsToSingle(((uint)table[address] << 16) | table[address + 1]);
}
