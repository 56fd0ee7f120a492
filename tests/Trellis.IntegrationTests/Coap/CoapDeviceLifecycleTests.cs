using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Coap;

/// <summary>CoAP devices as first-class things: their jobs over CoAP, and their presence and connectivity as MQTT devices have them.</summary>
[Collection(TrellisServerGroup.Name)]
public sealed class CoapDeviceLifecycleTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private const string JobsPolicy = """
        {"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
          {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"arn:aws:iot:*:*:topic/$aws/things/${iot:Connection.Thing.ThingName}/jobs/*"},
          {"Effect":"Allow","Action":"iot:Subscribe","Resource":"arn:aws:iot:*:*:topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/jobs/*"}]}
        """;

    [Fact]
    public async Task A_coap_device_takes_its_next_job_reports_progress_and_is_notified_of_the_next_one()
    {
        var (thing, thingArn, token, _, _) = await CoapDevice.CreateAsync(host, "coapjob", JobsPolicy, psk: false, Ct);
        string Uri(string path) => $"coap://127.0.0.1:{host.Server.Port("coap")}/{path}?thing={thing}&token={token}";
        var jobId = TrellisHost.Unique("cjob");
        var created = await host.IotCallsAsync([("create_job", new { jobId, targets = new[] { thingArn }, document = """{"operation":"blink","times":3}""" })], Ct);
        Assert.Equal(200, created[0]!["status"]!.GetValue<int>());

        // The next execution, with its document, as the MQTT …/jobs/$next/get/accepted body.
        var next = await CoapAsync(Uri($"things/{thing}/jobs/$next"));
        var execution = JsonNode.Parse(next.Stdout.Trim())!["execution"]!;
        Assert.Equal(jobId, execution["jobId"]!.GetValue<string>());
        Assert.Equal("QUEUED", execution["status"]!.GetValue<string>());
        Assert.Equal("blink", execution["jobDocument"]!["operation"]!.GetValue<string>());

        // Progress, then the end; a terminal execution refuses another change (4.09) and says so.
        var progress = await CoapAsync("-m", "put", "-t", "50", "-e", """{"status":"IN_PROGRESS","statusDetails":{"step":"1"},"includeJobExecutionState":true}""", Uri($"things/{thing}/jobs/{jobId}"));
        Assert.Equal("IN_PROGRESS", JsonNode.Parse(progress.Stdout.Trim())!["executionState"]!["status"]!.GetValue<string>());
        Assert.True((await CoapAsync("-m", "put", "-t", "50", "-e", """{"status":"SUCCEEDED"}""", Uri($"things/{thing}/jobs/{jobId}"))).ExitCode == 0);
        var again = await CoapAsync("-m", "put", "-t", "50", "-e", """{"status":"FAILED"}""", Uri($"things/{thing}/jobs/{jobId}"));
        Assert.Contains("4.09", again.Output, StringComparison.Ordinal);
        Assert.Contains("InvalidStateTransition", again.Output, StringComparison.Ordinal);
        Assert.Contains("4.00", (await CoapAsync("-m", "put", "-e", "not json", Uri($"things/{thing}/jobs/{jobId}"))).Output, StringComparison.Ordinal);
        Assert.Contains("4.04", (await CoapAsync(Uri($"things/{thing}/jobs/no-such-job"))).Output, StringComparison.Ordinal);
        var described = await host.IotCallsAsync([("describe_job_execution", new { jobId, thingName = thing })], Ct);
        Assert.Equal("SUCCEEDED", described[0]!["body"]!["execution"]!["status"]!.GetValue<string>());

        // Another thing's jobs are outside its policy.
        Assert.Contains("4.03", (await CoapAsync(Uri("things/someone-else/jobs/$next"))).Output, StringComparison.Ordinal);

        // Observing $next: a new job for the thing arrives as a notification (notify-next's body).
        var observed = Path.Combine(Path.GetTempPath(), $"{thing}-next.out");
        string Received() => File.Exists(observed) ? File.ReadAllText(observed) : string.Empty;
        var observations = host.Server.Services.GetService(typeof(Trellis.Server.CoapObservations)) as Trellis.Server.CoapObservations;
        var held = observations!.Count;
        using (var observer = ExternalTool.StartBackground("coap-client-notls", ["-s", "15", "-B", "15", "-o", observed, Uri($"things/{thing}/jobs/$next")]))
        {
            Assert.True(await Eventually.TrueAsync(() => observations.Count > held, Timeout, Ct), "not registered: " + observer.Stderr);
            var second = TrellisHost.Unique("cjob2");
            var made = await host.IotCallsAsync([("create_job", new { jobId = second, targets = new[] { thingArn }, document = """{"operation":"reboot"}""" })], Ct);
            Assert.Equal(200, made[0]!["status"]!.GetValue<int>());
            Assert.True(await Eventually.TrueAsync(() => Received().Contains(second, StringComparison.Ordinal), Timeout, Ct), "no notify-next notification: " + Received() + observer.Stderr);
        }

        File.Delete(observed);
    }

    [Fact]
    public async Task A_coap_device_is_online_while_it_talks_and_goes_offline_when_its_session_closes_or_it_falls_silent()
    {
        var (thing, _, token, _, policy) = await CoapDevice.CreateAsync(host, "coappres", CoapTests.DevicePolicy, psk: false, Ct);
        var watcher = TrellisHost.Unique("presw");
        using var events = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(watcher), "-t", $"$aws/events/presence/+/{thing}", "-q", "1"]);
        await host.WaitSubscribedAsync(watcher, events);
        JsonNode? Event(int index) => events.Lines.Count > index ? JsonNode.Parse(events.Lines[index]) : null;

        // Plain CoAP: online at its first request, offline after the idle time (3 s for the tests) with no observation.
        var read = await ExternalTool.RunAsync("coap-client-notls", ["-B", "5", $"coap://127.0.0.1:{host.Server.Port("coap")}/things/{thing}/shadow?thing={thing}&token={token}"], Timeout, cancellationToken: Ct);
        Assert.Contains("4.04", read.Output, StringComparison.Ordinal); // no shadow yet, but the device was accepted
        Assert.True(await events.WaitForLineAsync(l => l.Contains("\"eventType\":\"connected\"", StringComparison.Ordinal), Timeout, Ct), string.Join('|', events.Lines));
        var connectivity = await host.IotCallsAsync([("get_thing_connectivity_data", new { thingName = thing })], Ct);
        Assert.True(connectivity[0]!["body"]!["connected"]!.GetValue<bool>(), connectivity[0]!.ToJsonString());
        Assert.True(await events.WaitForLineAsync(l => l.Contains("MQTT_KEEP_ALIVE_TIMEOUT", StringComparison.Ordinal), Timeout, Ct), string.Join('|', events.Lines));
        Assert.Equal(Event(0)!["versionNumber"]!.GetValue<long>(), Event(1)!["versionNumber"]!.GetValue<long>());
        Assert.True(await Eventually.TrueAsync(async () =>
            !(await host.IotCallsAsync([("get_thing_connectivity_data", new { thingName = thing })], Ct))[0]!["body"]!["connected"]!.GetValue<bool>(), Timeout, Ct));

        // CoAPS: online for the session; the client's close_notify takes it offline at once.
        var (psk, _) = await CoapDevice.TokenAsync(host, thing, policy, psk: true, Ct);
        var secure = await ExternalTool.RunAsync("coap-client-openssl", ["-B", "5", "-u", thing, "-k", psk, "-m", "post", "-e", "1", $"coaps://127.0.0.1:{host.Server.Port("coaps")}/topics/devices/{thing}/up"], Timeout, cancellationToken: Ct);
        Assert.True(secure.ExitCode == 0, secure.Output);
        Assert.True(await events.WaitForLineAsync(l => l.Contains("CLIENT_INITIATED_DISCONNECT", StringComparison.Ordinal), Timeout, Ct), string.Join('|', events.Lines));
        Assert.Equal(4, events.Lines.Count);
        Assert.Equal("connected", Event(2)!["eventType"]!.GetValue<string>());
    }

    private static Task<ExternalTool.Result> CoapAsync(params string[] args) =>
        ExternalTool.RunAsync("coap-client-notls", ["-B", "5", .. args], Timeout, cancellationToken: Ct);
}
