using System.Globalization;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Broker;

/// <summary>A subscriber that stops reading must not stall publishers or other subscribers; what it misses is counted.</summary>
public sealed class SlowSubscriberTests : IAsyncLifetime
{
    private readonly SmallQueueHost _host = new();

    public ValueTask InitializeAsync() => _host.InitializeAsync();

    public ValueTask DisposeAsync() => _host.DisposeAsync();

    [Fact]
    public async Task Stuck_subscriber_drops_are_counted_while_others_get_everything()
    {
        var ct = TestContext.Current.CancellationToken;
        var topic = TrellisHost.Unique("slow/");
        var user = _host.Server.AccessKeys.AdminAccessKeyId;

        // A subscriber that never reads its socket.
        using var stuck = await StuckSubscriberAsync(_host, TrellisHost.Unique("stuck"), topic, ct);
        using var healthy = await HealthySubscriberAsync(_host, topic, ct);
        var payload = Path.Combine(_host.DataDirectory, "payload.bin");
        await File.WriteAllBytesAsync(payload, new byte[16 * 1024], ct);

        // 2000 messages of 16 KiB (32 MiB) overflow the stuck client's socket buffers and its 100-message queue.
        var started = DateTime.UtcNow;
        var publish = await ExternalTool.RunAsync("bash", ["-c", $"for i in $(seq 1 20); do mosquitto_pub -h 127.0.0.1 -p {_host.MqttPort.ToString(CultureInfo.InvariantCulture)} -u {user} -P '{_host.Server.AccessKeys.SecretFor(user)}' -t '{topic}' -f {payload} -q 0 --repeat 100 || exit 1; done"], TimeSpan.FromSeconds(60), cancellationToken: ct);
        var took = DateTime.UtcNow - started;

        Assert.True(publish.ExitCode == 0, publish.Output);
        Assert.True(took < TimeSpan.FromSeconds(30), $"publishing took {took.TotalSeconds:F1} s: the stuck subscriber stalled the publisher");
        Assert.True(await Eventually.TrueAsync(() => healthy.Lines.Count == 2000, TimeSpan.FromSeconds(20), ct), $"healthy subscriber got {healthy.Lines.Count} of 2000");
        Assert.True(_host.Server.Broker.Metrics.MessagesDropped > 0);
        Assert.True(_host.Logs.Contains("Queue of client stuck"));
        using var http = new HttpClient();
        var metrics = await http.GetStringAsync($"{_host.Endpoint}/metrics", ct);
        Assert.Equal(_host.Server.Broker.Metrics.MessagesDropped, PrometheusText.Value(metrics, "trellis_broker_messages_dropped_total"));
        Assert.NotNull(PrometheusText.Value(metrics, "dotnet_gc_collections_total", "gc_heap_generation=\"gen0\""));
        Assert.NotNull(PrometheusText.Value(metrics, "dotnet_gc_pause_time_seconds_total"));
    }

    /// <summary>On the epoll loop (1) and on the runtime's socket engine (0), whose output is a stream writer.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(0)]
    public async Task A_client_that_disconnects_while_its_socket_is_full_is_let_go_and_others_are_served(int mqttThreads)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var host = new SmallQueueHost(mqttThreads);
        await host.InitializeAsync();
        var topic = TrellisHost.Unique("full/");
        var user = host.Server.AccessKeys.AdminAccessKeyId;
        var stuckId = TrellisHost.Unique("full");
        using var stuck = await StuckSubscriberAsync(host, stuckId, topic, ct);
        using var healthy = await HealthySubscriberAsync(host, topic, ct);
        var payload = Path.Combine(host.DataDirectory, "full.bin");
        await File.WriteAllBytesAsync(payload, new byte[16 * 1024], ct);
        var auth = $"-h 127.0.0.1 -p {host.MqttPort.ToString(CultureInfo.InvariantCulture)} -u {user} -P '{host.Server.AccessKeys.SecretFor(user)}' -t '{topic}'";

        // 16 MiB fill the socket buffers: the broker's writer for this client waits for room that never comes.
        var flood = await ExternalTool.RunAsync("bash", ["-c", $"for i in $(seq 1 10); do mosquitto_pub {auth} -f {payload} -q 0 --repeat 100 || exit 1; done"], TimeSpan.FromSeconds(60), cancellationToken: ct);
        Assert.True(flood.ExitCode == 0, flood.Output);
        Assert.True(await Eventually.TrueAsync(() => host.Server.Broker.Metrics.MessagesDropped > 0, TimeSpan.FromSeconds(10), ct), "the stuck client's queue never filled");

        // DISCONNECT: a graceful close, whose output the broker completes while a send is still pending.
        await stuck.SendAsync([0xE0, 0x00], ct);
        Assert.True(
            await Eventually.TrueAsync(() => !host.Server.Broker.ConnectedClientIds().Contains(stuckId), TimeSpan.FromSeconds(10), ct),
            "the client that disconnected with a full socket is still connected");

        // The broker goes on serving: 100 distinct messages reach the healthy subscriber whole.
        var lines = string.Join('\n', Enumerable.Range(1, 100).Select(i => $"after-{i}"));
        var after = await ExternalTool.RunAsync("bash", ["-c", $"printf '{lines}\\n' | mosquitto_pub {auth} -q 1 -l"], TimeSpan.FromSeconds(30), cancellationToken: ct);
        Assert.True(after.ExitCode == 0, after.Output);
        Assert.True(
            await Eventually.TrueAsync(() => healthy.Lines.Count(l => l.StartsWith("after-", StringComparison.Ordinal)) == 100, TimeSpan.FromSeconds(20), ct),
            $"healthy subscriber got {healthy.Lines.Count(l => l.StartsWith("after-", StringComparison.Ordinal))} of the 100 later messages");
        Assert.Equal(Enumerable.Range(1, 100).Select(i => $"after-{i}"), healthy.Lines.Where(l => l.StartsWith("after-", StringComparison.Ordinal)));
    }

    /// <summary>A raw MQTT client, connected and subscribed to <paramref name="topic"/>, that the test never reads from.</summary>
    private static async Task<RawMqtt> StuckSubscriberAsync(TrellisHost host, string clientId, string topic, CancellationToken ct)
    {
        var user = host.Server.AccessKeys.AdminAccessKeyId;
        var stuck = await RawMqtt.ConnectAsync(host.MqttPort, ct);
        await stuck.SendAsync(RawMqtt.Connect(clientId, user, host.Server.AccessKeys.SecretFor(user)), ct);
        await stuck.ReadPacketAsync(TimeSpan.FromSeconds(5), ct);
        await stuck.SendAsync(RawMqtt.Frame(0x82, [0x00, 0x01, 0x00, (byte)topic.Length, .. System.Text.Encoding.UTF8.GetBytes(topic), 0x00]), ct);
        await stuck.ReadPacketAsync(TimeSpan.FromSeconds(5), ct);
        return stuck;
    }

    /// <summary>mosquitto_sub on <paramref name="topic"/>, once it and the stuck subscriber are both subscribed.</summary>
    private static async Task<ExternalTool.Background> HealthySubscriberAsync(TrellisHost host, string topic, CancellationToken ct)
    {
        var healthy = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(TrellisHost.Unique("ok")), "-t", topic]);
        try
        {
            await host.WaitSubscribersAsync(topic, clients: 2, peer: healthy);
        }
        catch
        {
            healthy.Dispose();
            throw;
        }

        return healthy;
    }

    private sealed class SmallQueueHost(int mqttThreads = 1) : TrellisHost(false, b =>
    {
        b.MaxQueuedMessagesPerClient = 100;
        b.EventLoops = mqttThreads;
    });
}
