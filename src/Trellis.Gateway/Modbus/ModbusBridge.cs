using System.Buffers;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using MQTTnet;
using Trellis.Device;

namespace Trellis.Gateway.Modbus;

/// <summary>
/// Polls every device of a register map and publishes each leaf thing's values upstream as one
/// JSON message on <c>devices/{thing}/telemetry</c> (QoS 1, under the gateway's policy), and
/// writes a leaf's desired shadow state to its writable points: a delta on
/// <c>$aws/things/{thing}/shadow/update/delta</c> naming a writable point is written to the device
/// and then reported. A device that stops answering is logged once when it fails and once when it
/// answers again; polling goes on.
/// </summary>
public sealed partial class ModbusBridge(RegisterMap map, TrellisDevice upstream, ILogger logger)
{
    /// <summary>The topic a leaf's polled values go to.</summary>
    public static string TelemetryTopic(string thing) => $"devices/{thing}/telemetry";

    public async Task RunAsync(CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(map);
        var clients = map.Devices.ToDictionary(d => d.Thing, d => new ModbusTcpClient(d.Host, d.Port, d.Timeout), StringComparer.Ordinal);
        try
        {
            var writable = map.Devices.Where(d => d.Points.Any(p => p.Writable)).ToDictionary(d => $"$aws/things/{d.Thing}/shadow/update/delta", StringComparer.Ordinal);
            if (writable.Count > 0)
            {
                upstream.Mqtt.ApplicationMessageReceivedAsync += e =>
                    writable.TryGetValue(e.ApplicationMessage.Topic, out var device) ? ApplyAsync(device, clients[device.Thing], e.ApplicationMessage.Payload.ToArray(), ct) : Task.CompletedTask;
                var subscribe = new MqttClientSubscribeOptionsBuilder();
                foreach (var topic in writable.Keys)
                {
                    subscribe.WithTopicFilter(topic, MQTTnet.Protocol.MqttQualityOfServiceLevel.AtLeastOnce);
                }

                await upstream.Mqtt.SubscribeAsync(subscribe.Build(), ct);
            }

            await Task.WhenAll(map.Devices.Select(d => PollAsync(d, clients[d.Thing], ct)));
        }
        finally
        {
            foreach (var client in clients.Values)
            {
                await client.DisposeAsync();
            }
        }
    }

    private async Task PollAsync(ModbusDevice device, ModbusTcpClient client, CancellationToken ct)
    {
        using var timer = new PeriodicTimer(device.Interval);
        string? failing = null;
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

                await upstream.PublishAsync(TelemetryTopic(device.Thing), Encoding.UTF8.GetBytes(body.ToJsonString()), 1, ct);
                if (failing is not null)
                {
                    LogRecovered(logger, device.Thing, device.Host, device.Port);
                    failing = null;
                }
            }
            catch (Exception e) when (e is IOException or TimeoutException or System.Net.Sockets.SocketException or InvalidOperationException && !ct.IsCancellationRequested)
            {
                if (failing != e.Message)
                {
                    LogPollFailed(logger, device.Thing, device.Host, device.Port, e.Message);
                    failing = e.Message;
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
            await upstream.PublishAsync($"$aws/things/{device.Thing}/shadow/update", Encoding.UTF8.GetBytes(update.ToJsonString()), 1, ct);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Modbus device of {Thing} at {Host}:{Port} failed: {Reason}; polling goes on")]
    private static partial void LogPollFailed(ILogger logger, string thing, string host, int port, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Modbus device of {Thing} at {Host}:{Port} answers again")]
    private static partial void LogRecovered(ILogger logger, string thing, string host, int port);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Modbus write of {Thing}.{Point} from its desired shadow state failed: {Reason}")]
    private static partial void LogWriteFailed(ILogger logger, string thing, string point, string reason);
}
