using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Trellis.Gateway.Modbus;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Gateway;

/// <summary>
/// The gateway's Modbus TCP client against a real Modbus device (pymodbus, Debian's
/// python3-pymodbus), with mbpoll as a second client that cross-checks what was read and written.
/// </summary>
public sealed class ModbusDeviceTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private const string Map = """
        {
          // the device the script serves; comments and trailing commas are allowed
          "devices": [{
            "thing": "press-1", "host": "127.0.0.1", "port": PORT, "unit": 1, "intervalMs": 500, "timeoutMs": 2000,
            "points": [
              {"name": "temperature", "table": "holding", "address": 0, "type": "float32"},
              {"name": "pressure", "table": "holding", "address": 2, "type": "int16", "scale": 0.5, "offset": 100},
              {"name": "cycles", "table": "holding", "address": 3, "type": "uint32", "order": "CDAB"},
              {"name": "speed", "table": "input", "address": 0, "type": "uint16", "scale": 0.1},
              {"name": "running", "table": "coil", "address": 0, "writable": true},
              {"name": "door", "table": "discrete", "address": 0},
              {"name": "setpoint", "table": "holding", "address": 10, "type": "float32", "writable": true},
            ],
          }],
        }
        """;

    [Fact]
    public async Task The_register_map_reads_and_writes_a_real_device_and_mbpoll_agrees()
    {
        var port = HttpReceiver.FreePort();
        using var device = ExternalTool.StartBackground("/usr/bin/python3", [Path.Combine(AppContext.BaseDirectory, "Scripts", "modbus_server.py"), port.ToString(CultureInfo.InvariantCulture)]);
        var map = RegisterMap.Parse(Map.Replace("PORT", port.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal), "test map");
        var press = map.Devices[0];
        await using var client = new ModbusTcpClient(press.Host, press.Port, press.Timeout);
        Assert.True(await Eventually.TrueAsync(async () =>
        {
            try
            {
                await client.ReadCoilsAsync(1, 0, 1, Ct);
                return true;
            }
            catch (Exception e) when (e is SocketException or TimeoutException or IOException)
            {
                return false;
            }
        }, Timeout, Ct), "the Modbus device did not start: " + device.Stderr);

        // Every point, decoded and scaled by the map.
        var values = await ModbusPoller.ReadAsync(client, press, Ct);
        Assert.Equal(21.5, values["temperature"]);
        Assert.Equal(100 + (-7 * 0.5), values["pressure"]);
        Assert.Equal(100_000, values["cycles"]);
        Assert.Equal(123.4, values["speed"], 6);
        Assert.Equal(1, values["running"]);
        Assert.Equal(1, values["door"]);

        // Writes by the map (a float setpoint in two registers, a coil), read back by mbpoll.
        await ModbusPoller.WriteAsync(client, press, press.Points.Single(p => p.Name == "setpoint"), 42.25, Ct);
        await ModbusPoller.WriteAsync(client, press, press.Points.Single(p => p.Name == "running"), 0, Ct);
        Assert.Equal("42.25", await MbpollAsync(port, "-r", "11", "-c", "1", "-t", "4:float", "-B"));
        Assert.Equal("21.5", await MbpollAsync(port, "-r", "1", "-c", "1", "-t", "4:float", "-B"));
        Assert.Equal("0", await MbpollAsync(port, "-r", "1", "-c", "1", "-t", "0"));
        Assert.Equal(0, (await ModbusPoller.ReadAsync(client, press, Ct))["running"]);

        // A read-only point cannot be written; an address the device lacks is its exception 2, and
        // the connection goes on serving.
        await Assert.ThrowsAsync<InvalidOperationException>(() => ModbusPoller.WriteAsync(client, press, press.Points.Single(p => p.Name == "door"), 0, Ct));
        var refused = await Assert.ThrowsAsync<ModbusException>(() => client.ReadHoldingRegistersAsync(1, 200, 2, Ct));
        Assert.Equal(2, refused.Code);
        Assert.Contains("illegal data address", refused.Message, StringComparison.Ordinal);
        Assert.Equal(21.5, (await ModbusPoller.ReadAsync(client, press, Ct))["temperature"]);
    }

    [Fact]
    public async Task A_device_that_accepts_and_never_answers_times_out_and_the_next_request_connects_again()
    {
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var port = ((IPEndPoint)silent.LocalEndpoint).Port;
        var held = new System.Collections.Concurrent.ConcurrentBag<Socket>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var accepting = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    held.Add(await silent.AcceptSocketAsync(stop.Token));
                }
            }
            catch (OperationCanceledException)
            {
            }
        }, Ct);

        await using var client = new ModbusTcpClient("127.0.0.1", port, TimeSpan.FromMilliseconds(300));
        var started = DateTime.UtcNow;
        var timedOut = await Assert.ThrowsAsync<TimeoutException>(() => client.ReadHoldingRegistersAsync(1, 0, 1, Ct));
        Assert.InRange(DateTime.UtcNow - started, TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(5));
        Assert.Contains($"127.0.0.1:{port}", timedOut.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<TimeoutException>(() => client.ReadHoldingRegistersAsync(1, 0, 1, Ct));
        Assert.True(await Eventually.TrueAsync(() => held.Count >= 2, Timeout, Ct), "the second request did not open a new connection");
        await stop.CancelAsync();
        await accepting;
        foreach (var socket in held)
        {
            socket.Dispose();
        }
    }

    private static async Task<string> MbpollAsync(int port, params string[] args)
    {
        var result = await ExternalTool.RunAsync("mbpoll", ["-m", "tcp", "-a", "1", "-1", "-p", port.ToString(CultureInfo.InvariantCulture), .. args, "127.0.0.1"], Timeout, cancellationToken: Ct);
        Assert.True(result.ExitCode == 0, result.Output);
        var line = result.Stdout.Split('\n').Single(l => l.StartsWith('['));
        return line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
    }
}
