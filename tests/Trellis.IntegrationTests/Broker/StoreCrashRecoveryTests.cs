using System.Globalization;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Broker;

/// <summary>
/// What each store acknowledged survives <c>kill -9</c> of a real <c>trellis serve</c>: retained
/// messages and their deletion, a persistent session's subscription (the client does not subscribe
/// again), the audit log, committed telemetry points, and messages waiting in the rules' outbox.
/// </summary>
public sealed class StoreCrashRecoveryTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly string _data = Path.Combine(Path.GetTempPath(), $"trellis-stores-{Guid.NewGuid():N}");

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Every_store_keeps_what_it_acknowledged_across_kill_9()
    {
        var prefix = "crash" + Guid.NewGuid().ToString("N")[..8];
        var (kept, deleted, sessionTopic) = ($"{prefix}/retained/kept", $"{prefix}/retained/deleted", $"{prefix}/session");
        var client = prefix + "-persistent";
        var thing = prefix + "-thing";
        using (var first = await ServerProcess.StartAsync(_data, Ct))
        {
            // A persistent session subscribes once and goes away.
            using (var subscriber = await RawMqtt.ConnectAsync(first.MqttPort, Ct))
            {
                await subscriber.SendAsync(RawMqtt.Connect(client, null, null, cleanStart: false), Ct);
                Assert.Equal([0x20, 0x02, 0x00, 0x00], await subscriber.ReadPacketAsync(Timeout, Ct));
                await subscriber.SendAsync(RawMqtt.Subscribe(1, sessionTopic, 1), Ct);
                Assert.Equal(0x90, (await subscriber.ReadPacketAsync(Timeout, Ct))[0]);
            }

            // Retained: one kept, one set and then deleted.
            await PublishAsync(first, kept, "keep-me", retain: true);
            await PublishAsync(first, deleted, "drop-me", retain: true);
            await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. first.Anonymous(prefix + "-d"), "-t", deleted, "-n", "-r", "-q", "1"], Timeout, cancellationToken: Ct);

            // An audited operation, five telemetry points through a rule, three messages for a Kafka broker that is down.
            var closedPort = HttpReceiver.FreePort().ToString(CultureInfo.InvariantCulture);
            var calls = await first.IotCallsAsync([
                ("create_thing", new { thingName = thing }),
                ("create_topic_rule", new { ruleName = prefix + "_ts", topicRulePayload = new { sql = $"SELECT v FROM '{prefix}/ts/+'", actions = new object[] { new { timestream = new { roleArn = "r", databaseName = "d", tableName = "t", dimensions = new[] { new { name = "thing", value = "${topic(3)}" } } } } } } }),
                ("create_topic_rule", new { ruleName = prefix + "_kafka", topicRulePayload = new { sql = $"SELECT v FROM '{prefix}/kafka/+'", actions = new object[] { new { kafka = new { destinationArn = "arn:aws:iot:us-east-1:000000000000:ruledestination/vpc/x", topic = "t", clientProperties = new Dictionary<string, string> { ["bootstrap.servers"] = "127.0.0.1:" + closedPort } } } } } }),
            ], Ct);
            Assert.All(calls, c => Assert.True(c!["status"]!.GetValue<int>() == 200, c.ToJsonString()));
            for (var v = 1; v <= 5; v++)
            {
                await PublishAsync(first, $"{prefix}/ts/dev", $"{{\"v\":{v}}}");
            }

            for (var v = 1; v <= 3; v++)
            {
                await PublishAsync(first, $"{prefix}/kafka/dev", $"{{\"v\":{v}}}");
            }

            Assert.True(await Eventually.TrueAsync(async () => await PointsAsync(first) == 5, Timeout, Ct), "the points were not committed");
            Assert.True(await Eventually.TrueAsync(async () => await MetricAsync(first, "trellis_rules_outbox_waiting") == 3, Timeout, Ct), "the outbox does not hold the three messages");
            first.Kill9();
        }

        using var second = await ServerProcess.StartAsync(_data, Ct);

        // The session is back with its subscription: a message published now reaches it without a new SUBSCRIBE.
        using var resumed = await RawMqtt.ConnectAsync(second.MqttPort, Ct);
        await resumed.SendAsync(RawMqtt.Connect(client, null, null, cleanStart: false), Ct);
        Assert.Equal([0x20, 0x02, 0x01, 0x00], await resumed.ReadPacketAsync(Timeout, Ct));
        await PublishAsync(second, sessionTopic, "after-restart");
        Assert.Equal("after-restart", RawMqtt.ParsePublish(await resumed.ReadPacketAsync(Timeout, Ct), v5: false).Payload);

        // The kept retained message is there; the deleted one stays deleted (a later live message comes first).
        var retained = await ExternalTool.RunCheckedAsync("mosquitto_sub", [.. second.Anonymous(prefix + "-r"), "-t", kept, "-C", "1", "-W", "10"], Timeout, cancellationToken: Ct);
        Assert.Equal("keep-me", retained.Stdout.Trim());
        using (var watcher = await RawMqtt.ConnectAsync(second.MqttPort, Ct))
        {
            await watcher.SendAsync(RawMqtt.Connect(prefix + "-w", null, null), Ct);
            await watcher.ReadPacketAsync(Timeout, Ct);
            await watcher.SendAsync(RawMqtt.Subscribe(1, deleted, 1), Ct);
            Assert.Equal(0x90, (await watcher.ReadPacketAsync(Timeout, Ct))[0]);
            await PublishAsync(second, deleted, "live");
            Assert.Equal("live", RawMqtt.ParsePublish(await watcher.ReadPacketAsync(Timeout, Ct), v5: false).Payload);
        }

        // The audit log, the points and the outbox.
        var audit = await second.SignedAsync("GET", "/api/audit?maxResults=200", null, Ct);
        Assert.Contains(audit["body"]!["events"]!.AsArray(), e => e!["operation"]!.GetValue<string>() == "CreateThing" && e["target"]?.GetValue<string>() == $"thingName={thing}");
        Assert.Equal(5, await PointsAsync(second));
        Assert.Equal(3, await MetricAsync(second, "trellis_rules_outbox_waiting"));
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

    private static Task PublishAsync(ServerProcess server, string topic, string payload, bool retain = false) =>
        ExternalTool.RunCheckedAsync("mosquitto_pub", [.. server.Anonymous("pub" + Guid.NewGuid().ToString("N")[..8]), "-t", topic, "-m", payload, "-q", "1", .. retain ? new[] { "-r" } : []], Timeout, cancellationToken: Ct);

    private static async Task<long> PointsAsync(ServerProcess server)
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var answer = await server.SignedAsync("GET", string.Create(CultureInfo.InvariantCulture, $"/api/telemetry/measures/v/summary?thing=dev&from={now - 3_600_000}&to={now + 60_000}"), null, Ct);
        return answer["body"]?["count"]?.GetValue<long>() ?? -1;
    }

    private static async Task<long> MetricAsync(ServerProcess server, string name)
    {
        using var http = new HttpClient();
        return (long)(PrometheusText.Value(await http.GetStringAsync(server.Endpoint + "/metrics", Ct), name) ?? -1);
    }
}
