using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Broker;

/// <summary>
/// What an acknowledgement promised must hold after <c>kill -9</c> of a real <c>trellis serve</c>:
/// persistent sessions connected at the crash, and QoS 1 messages acknowledged while they waited
/// in memory for a slow subscriber.
/// </summary>
public sealed class CrashRecoveryTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly string _data = Path.Combine(Path.GetTempPath(), $"trellis-crash-{Guid.NewGuid():N}");

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_persistent_session_connected_at_the_crash_keeps_its_subscription_and_gets_what_was_published_after_the_restart()
    {
        var clientId = TrellisHost.Unique("online");
        var topic = TrellisHost.Unique("crash/");
        using (var first = await ServerProcess.StartAsync(_data, Ct))
        {
            // Subscribed (SUBACK seen) and still connected when the server dies.
            using var subscriber = await SubscribeAsync(first.MqttPort, clientId, topic, v5: false);
            first.Kill9();
        }

        using var second = await ServerProcess.StartAsync(_data, Ct);

        // Two runs of the expiry sweep (counted in /metrics), in which a session wrongly counted as
        // disconnected since 1970 would be dropped, before anything may keep it alive.
        Assert.True(await Eventually.TrueAsync(async () => await SweepsAsync(second) >= 2, Timeout, Ct), "the broker's sweep did not run");
        await PublishAsync(second, topic, 100);

        // Back with clean session 0 and no SUBSCRIBE: the session, its subscription and its messages are there.
        using var resumed = await RawMqtt.ConnectAsync(second.MqttPort, Ct);
        await resumed.SendAsync(RawMqtt.Connect(clientId, null, null, cleanStart: false), Ct);
        var connack = await resumed.ReadPacketAsync(Timeout, Ct);
        Assert.Equal([0x20, 0x02, 0x01, 0x00], connack); // session present
        var received = await ReadMessagesAsync(resumed, 100, v5: false);
        Assert.Equal(Enumerable.Range(1, 100).Select(i => $"m{i}"), received);
    }

    [Fact]
    public async Task Messages_acknowledged_while_queued_for_a_slow_persistent_subscriber_survive_kill_9()
    {
        var clientId = TrellisHost.Unique("slow");
        var topic = TrellisHost.Unique("slow/");
        using (var first = await ServerProcess.StartAsync(_data, Ct))
        {
            // Connected, subscribed, and never reading: every message waits in its queue in memory.
            using var stuck = await SubscribeAsync(first.MqttPort, clientId, topic, v5: true);
            await PublishAsync(first, topic, 5000);
            first.Kill9();
        }

        using var second = await ServerProcess.StartAsync(_data, Ct);
        var resumed = await ExternalTool.RunAsync("mosquitto_sub", [.. second.Anonymous(clientId), "-V", "mqttv5", "-c", "-x", "3600", "-q", "1", "-t", topic, "-C", "5000", "-W", "25"], Timeout, cancellationToken: Ct);

        Assert.True(resumed.ExitCode == 0, $"mosquitto_sub exited {resumed.ExitCode}: {resumed.Stderr}");
        Assert.Equal(Enumerable.Range(1, 5000).Select(i => $"m{i}"), resumed.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public async Task The_queue_limit_applies_to_what_is_kept_on_disk_and_the_drop_count_agrees()
    {
        var clientId = TrellisHost.Unique("limit");
        var topic = TrellisHost.Unique("limit/");
        var limit = new Dictionary<string, string> { ["TRELLIS_Broker__MaxQueuedMessagesPerClient"] = "200" };
        using (var first = await ServerProcess.StartAsync(_data, Ct, limit))
        {
            var subscribe = await ExternalTool.RunAsync("mosquitto_sub", [.. first.Anonymous(clientId), "-c", "-q", "1", "-t", topic, "-E"], Timeout, cancellationToken: Ct);
            Assert.True(subscribe.ExitCode == 0, subscribe.Output);

            // 300 for an offline session that may keep 200: 100 are dropped, and said to be.
            await PublishAsync(first, topic, 300);
            using var http = new HttpClient();
            var metrics = await http.GetStringAsync($"{first.Endpoint}/metrics", Ct);
            Assert.Equal(100, PrometheusText.Value(metrics, "trellis_broker_messages_dropped_total"));
            first.Kill9();
        }

        using var second = await ServerProcess.StartAsync(_data, Ct, limit);
        var resumed = await ExternalTool.RunAsync("mosquitto_sub", [.. second.Anonymous(clientId), "-c", "-q", "1", "-t", topic, "-C", "201", "-W", "5"], Timeout, cancellationToken: Ct);

        // Exactly the first 200 were kept; -C 201 waits out its 5 s for a 201st that must not come.
        Assert.Equal(27, resumed.ExitCode); // mosquitto_sub's exit code for -W expiring
        Assert.Equal(Enumerable.Range(1, 200).Select(i => $"m{i}"), resumed.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public async Task A_session_replaced_by_a_clean_start_does_not_come_back_after_kill_9()
    {
        var clientId = TrellisHost.Unique("replaced");
        var topic = TrellisHost.Unique("replaced/");
        using (var first = await ServerProcess.StartAsync(_data, Ct))
        {
            // A persistent session whose connection is still open when a clean start takes the client id over.
            using var old = await SubscribeAsync(first.MqttPort, clientId, topic, v5: false);
            using var fresh = await RawMqtt.ConnectAsync(first.MqttPort, Ct);
            await fresh.SendAsync(RawMqtt.Connect(clientId, null, null, cleanStart: true), Ct);
            Assert.Equal([0x20, 0x02, 0x00, 0x00], await fresh.ReadPacketAsync(Timeout, Ct));
            var (_, closed) = await old.ReadUntilClosedAsync(Timeout, Ct);
            Assert.True(closed, "the old connection was not taken over");

            // The fresh connection's PINGRESP shows the broker has dealt with the old one's close.
            await fresh.SendAsync([0xC0, 0x00], Ct);
            Assert.Equal([0xD0, 0x00], await fresh.ReadPacketAsync(Timeout, Ct));
            await PublishAsync(first, topic, 1);
            first.Kill9();
        }

        using var second = await ServerProcess.StartAsync(_data, Ct);
        using var again = await RawMqtt.ConnectAsync(second.MqttPort, Ct);
        await again.SendAsync(RawMqtt.Connect(clientId, null, null, cleanStart: false), Ct);

        Assert.Equal([0x20, 0x02, 0x00, 0x00], await again.ReadPacketAsync(Timeout, Ct)); // no session present
        var (stray, _) = await again.ReadUntilClosedAsync(TimeSpan.FromSeconds(1), Ct);
        Assert.Empty(stray);
    }

    private static async Task<long> SweepsAsync(ServerProcess server)
    {
        using var http = new HttpClient();
        return (long)(PrometheusText.Value(await http.GetStringAsync(server.Endpoint + "/metrics", Ct), "trellis_broker_sweeps_total") ?? -1);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_data, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>A raw client with a persistent session (MQTT 3.1.1 clean session 0, or 5.0 with a one-hour expiry), subscribed at QoS 1.</summary>
    private static async Task<RawMqtt> SubscribeAsync(int port, string clientId, string topic, bool v5)
    {
        var client = await RawMqtt.ConnectAsync(port, Ct);
        await client.SendAsync(RawMqtt.Connect(clientId, null, null, level: v5 ? (byte)5 : (byte)4, cleanStart: false, sessionExpiry: v5 ? 3600u : 0u), Ct);
        var connack = await client.ReadPacketAsync(Timeout, Ct);
        Assert.Equal(0x20, connack[0]);
        await client.SendAsync(RawMqtt.Subscribe(1, topic, 1, v5), Ct);
        var suback = await client.ReadPacketAsync(Timeout, Ct);
        Assert.Equal(0x90, suback[0]);
        Assert.Equal(1, suback[^1]); // granted QoS 1
        return client;
    }

    /// <summary>Publishes m1..m<paramref name="count"/> at QoS 1 on one connection; exit code 0 means every one was acknowledged.</summary>
    private static async Task PublishAsync(ServerProcess server, string topic, int count)
    {
        var lines = Path.Combine(server.DataDirectory, $"lines-{count}.txt");
        await File.WriteAllLinesAsync(lines, Enumerable.Range(1, count).Select(i => $"m{i}"), Ct);
        var args = string.Join(' ', server.Anonymous(TrellisHost.Unique("pub")));
        var publish = await ExternalTool.RunAsync("bash", ["-c", $"mosquitto_pub {args} -q 1 -t '{topic}' -l < {lines}"], Timeout, cancellationToken: Ct);
        Assert.True(publish.ExitCode == 0, $"mosquitto_pub exited {publish.ExitCode}: {publish.Output}");
    }

    /// <summary>Reads <paramref name="count"/> QoS 1 PUBLISH packets, acknowledging each, and returns their payloads.</summary>
    private static async Task<List<string>> ReadMessagesAsync(RawMqtt client, int count, bool v5)
    {
        var payloads = new List<string>();
        while (payloads.Count < count)
        {
            var publish = RawMqtt.ParsePublish(await client.ReadPacketAsync(Timeout, Ct), v5);
            payloads.Add(publish.Payload);
            await client.SendAsync(RawMqtt.Ack(0x40, publish.PacketId), Ct);
        }

        return payloads;
    }
}
