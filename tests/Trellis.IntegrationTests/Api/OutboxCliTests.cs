using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary>
/// <c>trellis outbox</c> against an HTTP receiver that goes down and comes back: what waits is listed
/// with its age, rule and last error and counted in <c>/metrics</c>; retry cuts the back-off short;
/// purge and deleting the rule discard what waits.
/// </summary>
[Collection(TrellisServerGroup.Name)]
public sealed class OutboxCliTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task The_outbox_is_listed_measured_retried_purged_and_emptied_when_its_rule_is_deleted()
    {
        using var receiver = new HttpReceiver();
        var prefix = TrellisHost.Unique("obx");
        var rule = TrellisHost.Unique("obx_");
        var created = await host.IotCallsAsync([("create_topic_rule", new
        {
            ruleName = rule,
            topicRulePayload = new { sql = $"SELECT n FROM '{prefix}/+'", actions = new object[] { new { http = new { url = receiver.Url + "${topic(2)}", confirmationUrl = receiver.Url } } } },
        })], Ct);
        Assert.True(created[0]!["status"]!.GetValue<int>() == 200, created[0]!.ToJsonString());
        Assert.True(await Eventually.TrueAsync(() => receiver.EnableAnswers.Contains(200), Timeout, Ct), "the destination was not confirmed");
        var target = "http " + receiver.Url; // a URL with a template: one queue per fixed prefix

        // The receiver is down: three messages wait, with their rule, age and the receiver's answer.
        receiver.Down = true;
        await PublishAsync(prefix, 0, 3);
        JsonNode? Row(string stdout) => JsonNode.Parse(stdout)!["targets"]!.AsArray().FirstOrDefault(t => t!["target"]!.GetValue<string>() == target);
        JsonNode? row = null;
        Assert.True(await Eventually.TrueAsync(async () =>
        {
            row = Row((await TrellisCli.RunAsync(host, ["outbox", "list", "--output", "json"], Ct)).Stdout);
            return row?["depth"]?.GetValue<long>() == 3 && row["lastError"] is not null && row["nextAttempt"] is not null;
        }, Timeout, Ct), row?.ToJsonString() ?? "no row for " + target);
        Assert.Equal([rule], row!["rules"]!.AsArray().Select(r => r!.GetValue<string>()));
        Assert.Contains("answered HTTP 503", row["lastError"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.True(row["oldestAgeSeconds"]!.GetValue<double>() >= 0);
        var table = await TrellisCli.RunAsync(host, ["outbox", "list"], Ct);
        Assert.Contains(target, table.Stdout, StringComparison.Ordinal);

        using (var http = new HttpClient())
        {
            var metrics = await http.GetStringAsync(host.Endpoint + "/metrics", Ct);
            Assert.Equal(3, PrometheusText.Value(metrics, "trellis_rules_outbox_depth", $"target=\"{target}\""));
            Assert.True(PrometheusText.Value(metrics, "trellis_rules_outbox_oldest_age_seconds", $"target=\"{target}\"") >= 0, metrics);
        }

        // Back up, and retried now while the next attempt is seconds away: the pause is cut short
        // (logged) and the three arrive in order.
        Assert.True(await Eventually.TrueAsync(async () =>
        {
            row = Row((await TrellisCli.RunAsync(host, ["outbox", "list", "--output", "json"], Ct)).Stdout);
            return row?["nextAttempt"]?.GetValue<double>() - (DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0) > 2.5;
        }, Timeout, Ct), row?.ToJsonString());
        receiver.Down = false;
        var retried = await TrellisCli.RunAsync(host, ["outbox", "retry", target], Ct);
        Assert.True(retried.ExitCode == 0, retried.Output);
        Assert.Contains("retrying now", retried.Stdout, StringComparison.Ordinal);
        Assert.True(await Eventually.TrueAsync(() => receiver.Received.Count == 3, Timeout, Ct), $"received {receiver.Received.Count}");
        Assert.Equal(Enumerable.Range(0, 3).Select(i => $"{{\"n\":{i}}}"), receiver.Received.Select(r => r.Body));
        Assert.True(host.Logs.Contains($"Outbox target {target}: retrying now, as asked"), "the retry did not cut a pause");

        // Purged: what waits for the target from the rule is discarded, never delivered.
        receiver.Down = true;
        await PublishAsync(prefix, 3, 2);
        Assert.True(await WaitingAsync(target, 2), "two did not wait");
        var purged = await TrellisCli.RunAsync(host, ["outbox", "purge", "--target", target, "--rule", rule], Ct);
        Assert.True(purged.ExitCode == 0, purged.Output);
        Assert.Contains("2 message(s) discarded", purged.Stdout, StringComparison.Ordinal);
        Assert.True(await WaitingAsync(target, 0), "the purge left messages");
        Assert.True(host.Logs.Contains("Outbox purged by"), "the purge was not logged");

        // Deleting the rule discards what it left waiting.
        await PublishAsync(prefix, 5, 2);
        Assert.True(await WaitingAsync(target, 2), "two did not wait");
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["rules", "delete", rule], Ct)).ExitCode);
        Assert.True(await WaitingAsync(target, 0), "the deleted rule's messages still wait");
        Assert.True(host.Logs.Contains($"Rule {rule} was deleted: the 2 message(s)"), "the discarded messages were not logged");
        receiver.Down = false;
        await Task.Delay(TimeSpan.FromSeconds(2), Ct);
        Assert.Equal(3, receiver.Received.Count);

        Assert.Equal(2, (await TrellisCli.RunAsync(host, ["outbox", "purge"], Ct)).ExitCode);
        var unknown = await TrellisCli.RunAsync(host, ["outbox", "retry", "http http://nowhere.invalid"], Ct);
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("ResourceNotFoundException", unknown.Stderr, StringComparison.Ordinal);
    }

    private Task<bool> WaitingAsync(string target, long depth) => Eventually.TrueAsync(async () =>
    {
        var body = await host.SignedRequestAsync("GET", "/api/outbox", null, Ct);
        return (body["body"]!["targets"]!.AsArray().FirstOrDefault(t => t!["target"]!.GetValue<string>() == target)?["depth"]?.GetValue<long>() ?? 0) == depth;
    }, Timeout, Ct);

    private async Task PublishAsync(string prefix, int from, int count)
    {
        var args = host.AdminArgs(TrellisHost.Unique("pub"));
        for (var n = from; n < from + count; n++)
        {
            var pub = await ExternalTool.RunAsync("mosquitto_pub", [.. args, "-t", $"{prefix}/dev", "-m", $"{{\"n\":{n}}}", "-q", "1"], Timeout, cancellationToken: Ct);
            Assert.True(pub.ExitCode == 0, pub.Output);
        }
    }
}
