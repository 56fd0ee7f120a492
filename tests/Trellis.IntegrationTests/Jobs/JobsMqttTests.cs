using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Jobs;

/// <summary>The device side of jobs over MQTT with mosquitto clients: AWS's topics, payloads, clientToken echo, errors, notifications and events.</summary>
[Collection(TrellisServerGroup.Name)]
public sealed class JobsMqttTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_device_is_notified_starts_and_finishes_its_job_over_mqtt_and_rules_see_the_events()
    {
        var thing = TrellisHost.Unique("dev");
        var other = TrellisHost.Unique("dev");
        var job = TrellisHost.Unique("job");
        var device = await host.ProvisionAsync(thing, TrellisHost.Unique("jobs"), Policies.OwnJobs, Ct);
        var intruder = await host.ProvisionAsync(other, TrellisHost.Unique("jobs"), Policies.OwnJobs, Ct);
        var prefix = $"$aws/things/{thing}/jobs";

        var (notifyId, eventsId) = (TrellisHost.Unique("op"), TrellisHost.Unique("op"));
        using var notifyNext = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(notifyId), "-t", $"{prefix}/notify-next", "-t", $"{prefix}/notify", "-q", "1", "-v"]);
        using var events = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(eventsId), "-t", $"$aws/events/jobExecution/{job}/#", "-t", $"$aws/events/job/{job}/#", "-q", "1", "-v"]);
        // Both subscriptions in place before the job exists.
        await host.WaitSubscribedAsync(notifyId, notifyNext, filters: 2);
        await host.WaitSubscribedAsync(eventsId, events, filters: 2);

        var created = await host.IotCallsAsync([("create_job", new { jobId = job, targets = new[] { $"arn:aws:iot:us-east-1:000000000000:thing/{thing}" }, document = """{"operation":"blink","times":3}""" })], Ct);
        Assert.Equal(200, created[0]!["status"]!.GetValue<int>());
        Assert.True(await notifyNext.WaitForLineAsync(l => l.StartsWith(prefix + "/notify-next ", StringComparison.Ordinal) && l.Contains(job, StringComparison.Ordinal), Timeout, Ct), "no notify-next: " + notifyNext.Stderr);
        var next = JsonNode.Parse(notifyNext.Lines.First(l => l.StartsWith(prefix + "/notify-next ", StringComparison.Ordinal))[(prefix.Length + 13)..])!;
        Assert.Equal(("QUEUED", 3), (next["execution"]!["status"]!.GetValue<string>(), next["execution"]!["jobDocument"]!["times"]!.GetValue<int>()));
        Assert.True(await notifyNext.WaitForLineAsync(l => l.StartsWith(prefix + "/notify ", StringComparison.Ordinal) && l.Contains("\"QUEUED\"", StringComparison.Ordinal), Timeout, Ct));

        var pending = await RequestAsync(device, $"{prefix}/get", "accepted", """{"clientToken":"t-1"}""");
        Assert.Equal("t-1", pending["clientToken"]!.GetValue<string>());
        Assert.Equal(job, pending["queuedJobs"]![0]!["jobId"]!.GetValue<string>());

        // Policies apply to job topics as to any other: another device can neither read nor start this thing's jobs.
        var refused = await ExternalTool.RunAsync("mosquitto_rr", [.. host.TlsArgs(intruder, version: "mqttv5"), "-t", $"{prefix}/start-next", "-e", $"{prefix}/start-next/accepted", "-m", """{"statusDetails":{"progress":"hijacked"}}""", "-q", "1", "-W", "3"], Timeout, cancellationToken: Ct);
        Assert.DoesNotContain("execution", refused.Stdout, StringComparison.Ordinal);

        var start = await RequestAsync(device, $"{prefix}/start-next", "accepted", """{"clientToken":"t-2","statusDetails":{"progress":"0%"}}""");
        Assert.Equal(("t-2", "IN_PROGRESS", 2L), (start["clientToken"]!.GetValue<string>(), start["execution"]!["status"]!.GetValue<string>(), start["execution"]!["versionNumber"]!.GetValue<long>()));
        Assert.Equal("0%", start["execution"]!["statusDetails"]!["progress"]!.GetValue<string>()); // the intruder's start-next never ran

        var stale = await RequestAsync(device, $"{prefix}/{job}/update", "rejected", """{"clientToken":"t-3","status":"IN_PROGRESS","expectedVersion":1}""");
        Assert.Equal(("VersionMismatch", "t-3", 2L), (stale["code"]!.GetValue<string>(), stale["clientToken"]!.GetValue<string>(), stale["executionState"]!["versionNumber"]!.GetValue<long>()));
        var badJson = await RequestAsync(device, $"{prefix}/{job}/update", "rejected", "{status:");
        Assert.Equal("InvalidJson", badJson["code"]!.GetValue<string>());
        var unknown = await RequestAsync(device, $"{prefix}/no-such-job/get", "rejected", """{"clientToken":"t-4"}""");
        Assert.Equal("ResourceNotFound", unknown["code"]!.GetValue<string>());

        var done = await RequestAsync(device, $"{prefix}/{job}/update", "accepted", """{"clientToken":"t-5","status":"SUCCEEDED","expectedVersion":2,"statusDetails":{"progress":"100%"},"includeJobExecutionState":true}""");
        Assert.Equal(("SUCCEEDED", 3L), (done["executionState"]!["status"]!.GetValue<string>(), done["executionState"]!["versionNumber"]!.GetValue<long>()));
        var again = await RequestAsync(device, $"{prefix}/{job}/update", "rejected", """{"status":"FAILED"}""");
        Assert.Equal(("InvalidStateTransition", "SUCCEEDED"), (again["code"]!.GetValue<string>(), again["executionState"]!["status"]!.GetValue<string>()));
        var nothingNext = await RequestAsync(device, $"{prefix}/$next/get", "accepted", """{"clientToken":"t-6"}""");
        Assert.Null(nothingNext["execution"]);

        // The execution's event and the job's completion are routed like any message.
        Assert.True(await events.WaitForLineAsync(l => l.StartsWith($"$aws/events/jobExecution/{job}/succeeded ", StringComparison.Ordinal), Timeout, Ct), "no execution event: " + string.Join('\n', events.Lines));
        Assert.True(await events.WaitForLineAsync(l => l.StartsWith($"$aws/events/job/{job}/completed ", StringComparison.Ordinal), Timeout, Ct), "no job event: " + string.Join('\n', events.Lines));
        var succeeded = JsonNode.Parse(events.Lines.First(l => l.Contains("/succeeded ", StringComparison.Ordinal)).Split(' ', 2)[1])!;
        Assert.Equal(("JOB_EXECUTION", "100%"), (succeeded["eventType"]!.GetValue<string>(), succeeded["statusDetails"]!["progress"]!.GetValue<string>()));

    }

    /// <summary>One request as <paramref name="device"/> with mosquitto_rr; the answer on <c>{topic}/{outcome}</c>.</summary>
    private async Task<JsonNode> RequestAsync(ProvisionedDevice device, string topic, string outcome, string payload)
    {
        var result = await ExternalTool.RunAsync("mosquitto_rr", [.. host.TlsArgs(device, version: "mqttv5"), "-t", topic, "-e", $"{topic}/{outcome}", "-m", payload, "-q", "1", "-W", "10"], Timeout, cancellationToken: Ct);
        Assert.True(result.ExitCode == 0 && result.Stdout.Length > 0, $"mosquitto_rr {topic}: {result.Output}");
        return JsonNode.Parse(result.Stdout)!;
    }
}
