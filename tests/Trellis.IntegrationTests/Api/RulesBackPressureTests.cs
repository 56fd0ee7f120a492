using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Trellis.IntegrationTests.TestKit;
using Trellis.Rules;
using Trellis.Server;

namespace Trellis.IntegrationTests.Api;

/// <summary>A server whose rules queue holds a single message, so any burst overflows it.</summary>
public sealed class TinyRulesQueueHost : TrellisHost
{
    protected override TrellisServerOptions Configure(TrellisServerOptions options) => options with { RulesQueueCapacity = 1 };
}

[CollectionDefinition(Name)]
public sealed class TinyRulesQueueGroup : ICollectionFixture<TinyRulesQueueHost>
{
    public const string Name = "tiny-rules-queue";
}

/// <summary>
/// Publishers faster than the rules are slowed down, not dropped: when the rules queue is full a
/// client's acknowledgement waits until the rules take its message.
/// </summary>
[Collection(TinyRulesQueueGroup.Name)]
public sealed class RulesBackPressureTests(TinyRulesQueueHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("1", "mqttv311", false)]
    [InlineData("0", "mqttv5", false)]
    [InlineData("1", "mqttv5", true)]
    public async Task A_burst_past_a_full_rules_queue_is_evaluated_whole(string qos, string version, bool basicIngest)
    {
        const int messages = 3000;
        var rule = TrellisHost.Unique("burst_");
        var prefix = TrellisHost.Unique("burst");
        var created = await host.IotCallsAsync(
        [
            ("create_topic_rule", new
            {
                ruleName = rule,
                topicRulePayload = new
                {
                    sql = $"SELECT n FROM '{prefix}/+/data'",
                    actions = new object[]
                    {
                        new { timestream = new { roleArn = "r", databaseName = "trellis", tableName = "t", dimensions = new[] { new { name = "thing", value = "${topic(2)}" } } } },
                    },
                },
            }),
        ], Ct);
        Assert.True(created[0]!["status"]!.GetValue<int>() == 200, created[0]!.ToJsonString());

        var rules = host.Server.Services.GetRequiredService<RuleEngine>();
        var heldBefore = rules.HeldBack;
        var receivedBefore = host.Server.Broker.Metrics.MessagesReceived;
        var thing = TrellisHost.Unique("dev");

        // mosquitto_pub -l sends one message per line of its input, as fast as its in-flight window allows.
        // Basic Ingest: $aws/rules/{rule}/rest, where topic() is rest.
        var topic = (basicIngest ? $"$aws/rules/{rule}/" : "") + $"{prefix}/{thing}/data";
        var args = string.Join(' ', host.AdminArgs(TrellisHost.Unique("burst"), version).Concat(["-t", topic, "-q", qos, "-l"]).Select(a => "'" + a + "'"));
        var pub = await ExternalTool.RunAsync("sh", ["-c", $"seq 1 {messages} | sed 's/.*/{{\"n\":&}}/' | mosquitto_pub {args}"], Timeout, cancellationToken: Ct);
        Assert.True(pub.ExitCode == 0, pub.Output);

        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var path = string.Create(CultureInfo.InvariantCulture, $"/api/telemetry/measures/n/summary?thing={thing}&from={now - 600_000}&to={now + 60_000}");
        System.Text.Json.Nodes.JsonNode? summary = null;
        var complete = await Eventually.TrueAsync(
            async () => (summary = await host.SignedRequestAsync("GET", path, null, Ct))["body"]?["count"]?.GetValue<long>() == messages,
            TimeSpan.FromSeconds(20),
            Ct);
        Assert.True(complete, $"not every message reached the rule: {summary?.ToJsonString()}");
        Assert.Equal(messages * (messages + 1) / 2.0, summary!["body"]!["sum"]!.GetValue<double>());
        Assert.True(rules.HeldBack > heldBefore, "the burst never found the one-message queue full, so the test proved nothing");

        // The same counters reach Prometheus scrapers.
        using var http = new HttpClient();
        var metrics = await http.GetStringAsync($"{host.Endpoint}/metrics", Ct);
        long Metric(string name) => (long)(PrometheusText.Value(metrics, name) ?? -1);
        Assert.True(Metric("trellis_rules_held_back_total") >= rules.HeldBack);
        Assert.True(Metric("trellis_telemetry_points_written_total") >= messages);
        Assert.True(Metric("trellis_telemetry_engine_memory_bytes") > 0);
    }

    [Fact]
    public async Task A_publisher_cut_off_while_held_back_loses_nothing_for_the_rules()
    {
        // A deliberately slow rule (a regular expression over 20 KB per message) and a one-message
        // queue: nearly every publish waits for the rules when mosquitto_pub is killed mid-stream.
        var rule = TrellisHost.Unique("slow_");
        var prefix = TrellisHost.Unique("slow");
        var created = await host.IotCallsAsync([("create_topic_rule", new
        {
            ruleName = rule,
            topicRulePayload = new
            {
                sql = $"SELECT n, length(regexp_replace(blob, 'x', 'yy')) AS grown FROM '{prefix}/+'",
                actions = new object[] { new { timestream = new { roleArn = "r", databaseName = "d", tableName = "t", dimensions = new[] { new { name = "thing", value = "${topic(2)}" } } } } },
            },
        })], Ct);
        Assert.True(created[0]!["status"]!.GetValue<int>() == 200, created[0]!.ToJsonString());

        var subscriber = TrellisHost.Unique("sub");
        using var deliveries = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(subscriber), "-t", $"{prefix}/+", "-q", "1", "-F", "%t"]);
        await host.WaitSubscribedAsync(subscriber, deliveries);

        var rules = host.Server.Services.GetRequiredService<RuleEngine>();
        var heldBefore = rules.HeldBack;
        var receivedBefore = host.Server.Broker.Metrics.MessagesReceived;
        var lines = Path.Combine(host.DataDirectory, TrellisHost.Unique("lines") + ".txt");
        await File.WriteAllLinesAsync(lines, Enumerable.Range(1, 300).Select(i => $"{{\"n\":{i},\"blob\":\"{new string('x', 20_000)}\"}}"), Ct);
        var publisherId = TrellisHost.Unique("pub");
        var args = string.Join(' ', host.AdminArgs(publisherId).Concat(["-t", $"{prefix}/dev", "-q", "1", "-l"]).Select(a => "'" + a + "'"));

        // The publisher is killed (SIGKILL) as soon as one of its publishes is held back, so its
        // stream is cut short while a message waits for the rules: a signal, not a time window.
        using (var publisher = ExternalTool.StartBackground("sh", ["-c", $"exec mosquitto_pub {args} < '{lines}'"]))
        {
            Assert.True(await Eventually.TrueAsync(() => rules.HeldBack > heldBefore || publisher.HasExited, Timeout, Ct), "the publisher was never held back");
            Assert.True(rules.HeldBack > heldBefore, "the publisher finished without being held back: the rule is not slow enough here. " + publisher.Stderr);
        }

        // The killed publisher's last packets may still be in the server's socket buffer: the broker
        // reads them after the kill, so the count of messages taken is only final once it has seen
        // the connection end.
        Assert.True(await Eventually.TrueAsync(() => !host.Server.Broker.ConnectedClientIds().Contains(publisherId), Timeout, Ct), "the broker never saw the killed publisher's connection end");

        // Every message the broker routed to the subscriber is evaluated by the rule, the one that
        // was waiting when its publisher vanished included.
        Assert.True(await Eventually.TrueAsync(() => rules.QueueLength == 0, Timeout, Ct), "the rules did not drain");
        // Every message the broker took from the publisher was routed to the subscriber: wait until it has them all.
        var routed = (int)(host.Server.Broker.Metrics.MessagesReceived - receivedBefore);
        Assert.True(await Eventually.TrueAsync(() => deliveries.Lines.Count == routed, Timeout, Ct), $"the subscriber got {deliveries.Lines.Count} of the {routed} messages taken");
        Assert.InRange(routed, 1, 299); // the kill cut the stream short, or the test proves nothing
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var path = string.Create(CultureInfo.InvariantCulture, $"/api/telemetry/measures/n/summary?thing=dev&from={now - 600_000}&to={now + 60_000}");
        System.Text.Json.Nodes.JsonNode? summary = null;
        Assert.True(
            await Eventually.TrueAsync(async () => (summary = await host.SignedRequestAsync("GET", path, null, Ct))["body"]?["count"]?.GetValue<long>() == routed, Timeout, Ct),
            $"{routed} messages reached the subscriber but the rule stored: {summary?.ToJsonString()}");
    }
}
