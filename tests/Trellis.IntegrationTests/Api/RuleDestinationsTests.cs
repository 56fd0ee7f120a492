using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary>
/// HTTP topic rule destinations driven with boto3: nothing reaches a URL before its owner confirms
/// it, a disabled destination holds its messages, and an unreachable one is reported.
/// </summary>
[Collection(TrellisServerGroup.Name)]
public sealed class RuleDestinationsTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task An_http_action_sends_only_after_its_owner_confirms_and_waits_while_disabled()
    {
        using var receiver = new HttpReceiver(confirm: false);
        var created = await host.IotCallsAsync([("create_topic_rule_destination", new { destinationConfiguration = new { httpUrlConfiguration = new { confirmationUrl = receiver.Url } } })], Ct);
        Assert.True(created[0]!["status"]!.GetValue<int>() == 200, created[0]!.ToJsonString());
        var destination = created[0]!["body"]!["topicRuleDestination"]!;
        var arn = destination["arn"]!.GetValue<string>();
        Assert.Matches(@"^arn:aws:iot:[a-z0-9-]+:\d+:ruledestination/http/[0-9a-f-]{36}$", arn);
        Assert.Equal("IN_PROGRESS", destination["status"]!.GetValue<string>());
        Assert.Equal(receiver.Url, destination["httpUrlProperties"]!["confirmationUrl"]!.GetValue<string>());

        // The owner got AWS's confirmation message.
        Assert.True(await Eventually.TrueAsync(() => receiver.Confirmations.Count == 1, Timeout, Ct), "no confirmation message");
        var confirmation = receiver.Confirmations[0];
        Assert.Equal(receiver.ConfirmationLengths[0].Actual, receiver.ConfirmationLengths[0].Declared); // Content-Length, not chunked
        Assert.Equal(arn, confirmation["arn"]!.GetValue<string>());
        var token = confirmation["confirmationToken"]!.GetValue<string>();
        Assert.Equal($"{host.Endpoint}/confirmdestination/{token}", confirmation["enableUrl"]!.GetValue<string>());

        // A rule that sends there while it is unconfirmed: the action fails to the error action, the receiver gets nothing.
        var prefix = TrellisHost.Unique("dest");
        var rule = TrellisHost.Unique("dest_");
        var calls = await host.IotCallsAsync(
        [
            ("update_topic_rule_destination", new { arn, status = "ENABLED" }),
            ("create_topic_rule", new
            {
                ruleName = rule,
                topicRulePayload = new
                {
                    sql = $"SELECT n FROM '{prefix}/+'",
                    actions = new object[] { new { http = new { url = receiver.Url + "${topic(2)}", confirmationUrl = receiver.Url } } },
                    errorAction = new { republish = new { topic = $"{prefix}-errors", roleArn = "r" } },
                },
            }),
        ], Ct);
        Assert.Equal("InvalidRequestException", calls[0]!["error"]!.GetValue<string>());
        Assert.Contains("confirmation", calls[0]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.True(calls[1]!["status"]!.GetValue<int>() == 200, calls[1]!.ToJsonString());
        Assert.Single(receiver.Confirmations); // the rule reused the destination instead of creating another

        var subscriber = TrellisHost.Unique("sub");
        using var errors = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(subscriber), "-t", $"{prefix}-errors"]);
        await host.WaitSubscribedAsync(subscriber, errors);
        await PublishAsync($"{prefix}/a", 1);
        string? line = null;
        Assert.True(await errors.WaitForLineAsync(l => (line = l).Contains("failures", StringComparison.Ordinal), Timeout, Ct), "no failure report: " + errors.Stderr);
        Assert.Contains("IN_PROGRESS", JsonNode.Parse(line!)!["failures"]![0]!["errorMessage"]!.GetValue<string>(), StringComparison.Ordinal);

        // The owner confirms with the token through ConfirmTopicRuleDestination; a second use of the token is refused.
        calls = await host.IotCallsAsync(
        [
            ("confirm_topic_rule_destination", new { confirmationToken = token }),
            ("get_topic_rule_destination", new { arn }),
            ("confirm_topic_rule_destination", new { confirmationToken = token }),
        ], Ct);
        Assert.True(calls[0]!["status"]!.GetValue<int>() == 200, calls[0]!.ToJsonString());
        Assert.Equal("ENABLED", calls[1]!["body"]!["topicRuleDestination"]!["status"]!.GetValue<string>());
        Assert.Equal("InvalidRequestException", calls[2]!["error"]!.GetValue<string>());
        await PublishAsync($"{prefix}/a", 2);
        Assert.True(await Eventually.TrueAsync(() => receiver.Received.Count == 1, Timeout, Ct), "nothing delivered once enabled");
        Assert.Equal(("{\"n\":2}", "/hook/a"), (receiver.Received[0].Body, receiver.Received[0].Path));

        // A message already queued when the destination is disabled waits in the outbox; a new one
        // fails to the error action (as on AWS); enabled again, the queued one is delivered.
        receiver.Down = true;
        await PublishAsync($"{prefix}/a", 3);
        Assert.True(await Eventually.TrueAsync(() => receiver.Refused > 0, Timeout, Ct), "the receiver was never tried");
        calls = await host.IotCallsAsync([("update_topic_rule_destination", new { arn, status = "DISABLED" })], Ct);
        Assert.True(calls[0]!["status"]!.GetValue<int>() == 200, calls[0]!.ToJsonString());
        receiver.Down = false;
        await PublishAsync($"{prefix}/a", 4);
        Assert.True(await errors.WaitForLineAsync(l => l.Contains("DISABLED", StringComparison.Ordinal), Timeout, Ct), "no failure report for the disabled destination: " + string.Join('\n', errors.Lines));
        var outbox = (Rules.Outbox)host.Server.Services.GetService(typeof(Rules.Outbox))!;
        var target = "http|" + receiver.Url; // one ordered queue per fixed prefix of the url
        // The outbox tried the queued message with the destination disabled, and held it (its own log line says so).
        Assert.True(
            await Eventually.TrueAsync(() => host.Logs.Entries.Any(e => e.Message.Contains("is not taking messages", StringComparison.Ordinal) && e.Message.Contains("is DISABLED", StringComparison.Ordinal)), Timeout, Ct),
            "the outbox never tried the queued message against the disabled destination");
        Assert.Equal(1, outbox.Waiting(target));
        Assert.Single(receiver.Received);
        calls = await host.IotCallsAsync(
        [
            ("update_topic_rule_destination", new { arn, status = "ENABLED" }),
            ("list_topic_rule_destinations", new { }),
        ], Ct);
        Assert.True(calls[0]!["status"]!.GetValue<int>() == 200, calls[0]!.ToJsonString());
        var summary = calls[1]!["body"]!["destinationSummaries"]!.AsArray().Single(d => d!["arn"]!.GetValue<string>() == arn)!;
        Assert.Equal(receiver.Url, summary["httpUrlSummary"]!["confirmationUrl"]!.GetValue<string>());
        Assert.True(await Eventually.TrueAsync(() => receiver.Received.Count == 2, TimeSpan.FromSeconds(40), Ct), $"received {receiver.Received.Count}");
        Assert.Equal(["{\"n\":2}", "{\"n\":3}"], receiver.Received.Select(r => r.Body));

        calls = await host.IotCallsAsync(
        [
            ("delete_topic_rule", new { ruleName = rule }),
            ("delete_topic_rule_destination", new { arn }),
            ("get_topic_rule_destination", new { arn }),
        ], Ct);
        Assert.Equal(200, calls[1]!["status"]!.GetValue<int>());
        Assert.Equal("ResourceNotFoundException", calls[2]!["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task The_enable_url_works_without_credentials_and_an_unreachable_destination_is_reported()
    {
        // The enableUrl, fetched by curl with no signature, enables the destination.
        using var receiver = new HttpReceiver(confirm: false);
        var created = await host.IotCallsAsync([("create_topic_rule_destination", new { destinationConfiguration = new { httpUrlConfiguration = new { confirmationUrl = receiver.Url + "in/" } } })], Ct);
        var arn = created[0]!["body"]!["topicRuleDestination"]!["arn"]!.GetValue<string>();
        Assert.True(await Eventually.TrueAsync(() => receiver.Confirmations.Count == 1, Timeout, Ct), "no confirmation message");
        var curl = await ExternalTool.RunAsync("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", receiver.Confirmations[0]["enableUrl"]!.GetValue<string>()], Timeout, cancellationToken: Ct);
        Assert.Equal("200", curl.Stdout);
        var bogus = await ExternalTool.RunAsync("curl", ["-sS", $"{host.Endpoint}/confirmdestination/not-a-token"], Timeout, cancellationToken: Ct);
        Assert.Contains("does not belong", bogus.Stdout, StringComparison.Ordinal);
        var got = await host.IotCallsAsync([("get_topic_rule_destination", new { arn }), ("create_topic_rule_destination", new { destinationConfiguration = new { httpUrlConfiguration = new { confirmationUrl = receiver.Url + "in/" } } })], Ct);
        Assert.Equal("ENABLED", got[0]!["body"]!["topicRuleDestination"]!["status"]!.GetValue<string>());
        Assert.Equal("ResourceAlreadyExistsException", got[1]!["error"]!.GetValue<string>());

        // Nobody listens at this one: ERROR, with the reason.
        var closed = $"http://127.0.0.1:{HttpReceiver.FreePort()}/gone/";
        created = await host.IotCallsAsync([("create_topic_rule_destination", new { destinationConfiguration = new { httpUrlConfiguration = new { confirmationUrl = closed } } })], Ct);
        var closedArn = created[0]!["body"]!["topicRuleDestination"]!["arn"]!.GetValue<string>();
        JsonNode? state = null;
        Assert.True(await Eventually.TrueAsync(async () => (state = (await host.IotCallsAsync([("get_topic_rule_destination", new { arn = closedArn })], Ct))[0]!["body"]!["topicRuleDestination"])!["status"]!.GetValue<string>() == "ERROR", Timeout, Ct), state?.ToJsonString());
        Assert.Contains(closed, state!["statusReason"]!.GetValue<string>(), StringComparison.Ordinal);

        // Disabling it first does not make it enableable: it was never confirmed.
        var sidestep = await host.IotCallsAsync([("update_topic_rule_destination", new { arn = closedArn, status = "DISABLED" }), ("update_topic_rule_destination", new { arn = closedArn, status = "ENABLED" })], Ct);
        Assert.Equal(200, sidestep[0]!["status"]!.GetValue<int>());
        Assert.Equal("InvalidRequestException", sidestep[1]!["error"]!.GetValue<string>());
        Assert.Contains("never confirmed", sidestep[1]!["message"]!.GetValue<string>(), StringComparison.Ordinal);

        // Mistakes in http actions are refused when the rule is created.
        var prefix = TrellisHost.Unique("bad");
        var refused = await host.IotCallsAsync(
        [
            ("create_topic_rule", new { ruleName = TrellisHost.Unique("bad_"), topicRulePayload = new { sql = $"SELECT * FROM '{prefix}'", actions = new object[] { new { http = new { url = receiver.Url + "${topic()}" } } } } }),
            ("create_topic_rule", new { ruleName = TrellisHost.Unique("bad_"), topicRulePayload = new { sql = $"SELECT * FROM '{prefix}'", actions = new object[] { new { http = new { url = receiver.Url + "x", confirmationUrl = "http://elsewhere.example/" } } } } }),
            ("create_topic_rule_destination", new { destinationConfiguration = new { httpUrlConfiguration = new { confirmationUrl = "ftp://127.0.0.1/" } } }),
        ], Ct);
        Assert.Contains("confirmationUrl is required", refused[0]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("must be a prefix of the url", refused[1]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("InvalidRequestException", refused[2]!["error"]!.GetValue<string>());
        await host.IotCallsAsync([("delete_topic_rule_destination", new { arn }), ("delete_topic_rule_destination", new { arn = closedArn })], Ct);
    }

    private async Task PublishAsync(string topic, int n)
    {
        var pub = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("pub")), "-t", topic, "-m", $"{{\"n\":{n}}}", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(pub.ExitCode == 0, pub.Output);
    }
}
