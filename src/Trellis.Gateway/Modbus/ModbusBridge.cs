using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;

namespace Trellis.Gateway.Modbus;

/// <summary>
/// Polls every device of a register map and sends each leaf thing's values upstream (through the
/// gateway's disk queue) as one JSON message on <c>devices/{thing}/telemetry</c>, and
/// writes a leaf's desired shadow state to its writable points: a delta on
/// <c>$aws/things/{thing}/shadow/update/delta</c> naming a writable point is written to the device
/// and then reported. A device that stops answering is logged once when it fails and once when it
/// answers again; polling goes on.
/// </summary>
public sealed partial class ModbusBridge(RegisterMap map, ModbusBridge.Publisher publish, ILogger logger)
{
    private readonly Dictionary<string, ModbusTcpClient> _clients = map.Devices.ToDictionary(d => d.Thing, d => new ModbusTcpClient(d.Host, d.Port, d.Timeout), StringComparer.Ordinal);

    /// <summary>Sends a leaf's message upstream (through the gateway's disk queue): leaf, topic, payload.</summary>
    public delegate Task Publisher(string leaf, string topic, byte[] payload, CancellationToken cancellationToken);

    /// <summary>The topic a leaf's polled values go to.</summary>
    /// <summary>Told when a device starts or stops answering its polls (the leaf's presence upstream).</summary>
    public Action<string, bool>? Reachability { get; set; }

    public IEnumerable<string> Things => map.Devices.Select(d => d.Thing);

    public static string TelemetryTopic(string thing) => $"devices/{thing}/telemetry";

    /// <summary>The shadow delta topics of leaves with writable points: the gateway subscribes to them upstream.</summary>
    public IEnumerable<string> DeltaTopics => map.Devices.Where(d => d.Points.Any(p => p.Writable)).Select(d => DeltaTopic(d.Thing));

    public async Task RunAsync(CancellationToken ct)
    {
        try
        {
            await Task.WhenAll(map.Devices.Select(d => PollAsync(d, _clients[d.Thing], ct)));
        }
        finally
        {
            foreach (var client in _clients.Values)
            {
                await client.DisposeAsync();
            }
        }
    }

    /// <summary>A message from upstream: a shadow delta of a Modbus leaf is written to its device.</summary>
    public Task OnDownstreamAsync(string topic, byte[] payload, CancellationToken ct) =>
        map.Devices.FirstOrDefault(d => DeltaTopic(d.Thing) == topic) is { } device
            ? ApplyAsync(device, _clients[device.Thing], payload, ct)
            : Task.CompletedTask;

    private static string DeltaTopic(string thing) => $"$aws/things/{thing}/shadow/update/delta";

    private async Task PollAsync(ModbusDevice device, ModbusTcpClient client, CancellationToken ct)
    {
        using var timer = new PeriodicTimer(device.Interval);
        string? failing = null;
        bool? answering = null;
        do
        {
            try
            {
                var values = await ModbusPoller.ReadAsync(client, device, ct);
                var body = new JsonObject { ["timestamp"] = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() };
                foreach (var (name, value) in values)
                {
                    body[name] = value;
                }

                await publish(device.Thing, TelemetryTopic(device.Thing), Encoding.UTF8.GetBytes(body.ToJsonString()), ct);
                if (failing is not null)
                {
                    LogRecovered(logger, device.Thing, device.Host, device.Port);
                    failing = null;
                }

                if (answering != true)
                {
                    answering = true;
                    Reachability?.Invoke(device.Thing, true);
                }
            }
            catch (Exception e) when (e is IOException or TimeoutException or System.Net.Sockets.SocketException or InvalidOperationException or Forwarding.QueueFullException && !ct.IsCancellationRequested)
            {
                if (failing != e.Message)
                {
                    LogPollFailed(logger, device.Thing, device.Host, device.Port, e.Message);
                    failing = e.Message;
                }

                if (answering != false)
                {
                    answering = false;
                    Reachability?.Invoke(device.Thing, false);
                }
            }
        }
        while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false));
    }

    /// <summary>Writes the delta's writable points to the device, then reports what was written.</summary>
    private async Task ApplyAsync(ModbusDevice device, ModbusTcpClient client, byte[] payload, CancellationToken ct)
    {
        JsonObject? state;
        try
        {
            state = JsonNode.Parse(payload)?["state"] as JsonObject;
        }
        catch (System.Text.Json.JsonException)
        {
            return;
        }

        var reported = new JsonObject();
        foreach (var (name, node) in state ?? [])
        {
            if (device.Points.FirstOrDefault(p => p.Name == name && p.Writable) is not { } point || node is not JsonValue value)
            {
                continue;
            }

            var number = value.TryGetValue<bool>(out var flag) ? (flag ? 1 : 0) : value.TryGetValue<double>(out var n) ? n : double.NaN;
            if (double.IsNaN(number))
            {
                LogWriteFailed(logger, device.Thing, name, "the desired value is not a number or a boolean");
                continue;
            }

            try
            {
                await ModbusPoller.WriteAsync(client, device, point, number, ct);
                reported[name] = node.DeepClone();
            }
            catch (Exception e) when (e is IOException or TimeoutException or System.Net.Sockets.SocketException or ArgumentOutOfRangeException)
            {
                LogWriteFailed(logger, device.Thing, name, e.Message);
            }
        }

        if (reported.Count > 0)
        {
            var update = new JsonObject { ["state"] = new JsonObject { ["reported"] = reported } };
            await publish(device.Thing, $"$aws/things/{device.Thing}/shadow/update", Encoding.UTF8.GetBytes(update.ToJsonString()), ct);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Modbus device of {Thing} at {Host}:{Port} failed: {Reason}; polling goes on")]
    private static partial void LogPollFailed(ILogger logger, string thing, string host, int port, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Modbus device of {Thing} at {Host}:{Port} answers again")]
    private static partial void LogRecovered(ILogger logger, string thing, string host, int port);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Modbus write of {Thing}.{Point} from its desired shadow state failed: {Reason}")]
    private static partial void LogWriteFailed(ILogger logger, string thing, string point, string reason);
}
