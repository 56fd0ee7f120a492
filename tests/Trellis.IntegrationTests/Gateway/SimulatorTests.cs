using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Gateway;

/// <summary>
/// <c>trellis simulate</c> against a real server: a smart-city fleet provisions itself by claim,
/// publishes, follows a street light's desired schedule from its shadow (set with boto3), runs a
/// job created with boto3 and a firmware update through the OTA agent, and a second run reuses the
/// identities it kept.
/// </summary>
[Collection(TrellisServerGroup.Name)]
public sealed class SimulatorTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_smart_city_fleet_provisions_by_claim_publishes_follows_its_shadow_and_runs_a_job()
    {
        var state = Path.Combine(host.DataDirectory, TrellisHost.Unique("sim"));
        string[] Args(int seconds) =>
            [.. TrellisCli.Leading, "simulate", "--profile", "smart-city", "--devices", "8", "--seconds", seconds.ToString(System.Globalization.CultureInfo.InvariantCulture), "--interval-ms", "500",
             "--state", state, "--endpoint", host.Endpoint, "--data", host.DataDirectory, "--output", "json"];
        using var run = ExternalTool.StartBackground(TrellisCli.FileName, Args(24));
        Assert.True(await Eventually.TrueAsync(() => run.Stderr.Contains("8 devices ready (8 provisioned by claim", StringComparison.Ordinal), Timeout, Ct), run.Stderr);

        // Device 2 of the smart-city fleet is a street light: give it a schedule and a job.
        const string Light = "sim-smart-city-00002";
        var job = TrellisHost.Unique("simjob");
        Assert.True(await Eventually.TrueAsync(async () =>
        {
            var shadow = await host.IotCallsAsync([("data:get_thing_shadow", new { thingName = Light })], Ct);
            return shadow[0]!["status"]!.GetValue<int>() == 200 && shadow[0]!["body"]!["payload"]!["state"]!["reported"]?["kind"]?.GetValue<string>() == "streetLight";
        }, Timeout, Ct), "the street light did not report itself: " + run.Stderr);
        var calls = await host.IotCallsAsync([
            ("data:update_thing_shadow", new { thingName = Light, payload = new { state = new { desired = new { schedule = new { on = "19:30", off = "05:45" }, brightnessPct = 55 } } } }),
            ("create_job", new { jobId = job, targets = new[] { $"arn:aws:iot:us-east-1:000000000000:thing/{Light}" }, document = """{"operation":"recalibrate"}""" }),
        ], Ct);
        Assert.All(calls, c => Assert.Equal(200, c!["status"]!.GetValue<int>()));
        Assert.True(await Eventually.TrueAsync(async () =>
        {
            var shadow = await host.IotCallsAsync([("data:get_thing_shadow", new { thingName = Light })], Ct);
            var reported = shadow[0]!["body"]!["payload"]!["state"]!["reported"];
            return reported?["schedule"]?["on"]?.GetValue<string>() == "19:30" && reported["brightnessPct"]?.GetValue<int>() == 55;
        }, Timeout, Ct), "the street light did not apply its desired schedule");
        Assert.True(await Eventually.TrueAsync(async () =>
        {
            var execution = await host.IotCallsAsync([("describe_job_execution", new { jobId = job, thingName = Light })], Ct);
            return execution[0]!["body"]?["execution"]?["status"]?.GetValue<string>() == "SUCCEEDED";
        }, Timeout, Ct), "the job did not succeed on the simulated device");

        // A firmware job: the device SDK's OTA agent downloads and verifies the signed image,
        // "installs" it, restarts, and reports SUCCEEDED and the new version.
        var image = Path.Combine(state, "..", TrellisHost.Unique("light") + ".bin");
        await File.WriteAllBytesAsync(image, System.Security.Cryptography.RandomNumberGenerator.GetBytes(64 * 1024), Ct);
        var firmware = Path.GetFileName(image);
        var upload = await TrellisCli.RunAsync(host, ["firmware", "upload", firmware, image, "--sign"], Ct);
        Assert.True(upload.ExitCode == 0, upload.Output);
        var otaJob = TrellisHost.Unique("simota");
        var created = await TrellisCli.RunAsync(host, ["jobs", "create", otaJob, "--thing", Light, "--firmware", firmware, "--version", "2.0.0"], Ct);
        Assert.True(created.ExitCode == 0, created.Output);
        Assert.True(await Eventually.TrueAsync(async () =>
        {
            var execution = await host.IotCallsAsync([("describe_job_execution", new { jobId = otaJob, thingName = Light })], Ct);
            return execution[0]!["body"]?["execution"]?["status"]?.GetValue<string>() == "SUCCEEDED";
        }, Timeout, Ct), "the firmware job did not succeed on the simulated device: " + run.Stderr);
        var after = await host.IotCallsAsync([("data:get_thing_shadow", new { thingName = Light })], Ct);
        Assert.Equal("2.0.0", after[0]!["body"]!["payload"]!["state"]!["reported"]!["firmware"]!.GetValue<string>());

        Assert.True(await run.WaitForExitAsync(Timeout, Ct), run.Stderr);
        Assert.True(run.ExitCode == 0, run.Stderr);
        var summary = JsonNode.Parse(string.Join('\n', run.Lines))!;
        Assert.Equal(8, summary["peakConnected"]!.GetValue<long>());
        Assert.True(summary["messages"]!.GetValue<long>() >= 8 * 5, summary.ToJsonString());
        Assert.True(summary["shadowUpdatesApplied"]!.GetValue<long>() >= 1, summary.ToJsonString());
        Assert.Equal(2, summary["jobsCompleted"]!.GetValue<long>());
        Assert.True(summary["errors"]!.GetValue<long>() == 0, summary.ToJsonString());

        // Telemetry reached the broker under the devices' own names; the things are in the fleet's group.
        var group = await host.IotCallsAsync([("list_things_in_thing_group", new { thingGroupName = "sim-smart-city" })], Ct);
        Assert.Contains(Light, group[0]!["body"]!["things"]!.AsArray().Select(t => t!.GetValue<string>()));

        // A second run keeps the identities it made: nothing is provisioned again.
        var again = await ExternalTool.RunAsync(TrellisCli.FileName, Args(2), Timeout, cancellationToken: Ct);
        Assert.True(again.ExitCode == 0, again.Output);
        Assert.Contains("8 devices ready (0 provisioned by claim", again.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Devices_on_coap_publish_report_and_follow_their_shadow_beside_mqtt_ones()
    {
        var state = Path.Combine(host.DataDirectory, TrellisHost.Unique("simcoap"));
        var watcher = TrellisHost.Unique("simwatch");
        using var telemetry = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(watcher), "-t", "devices/sim-industrial-00002/telemetry", "-q", "1"]);
        await host.WaitSubscribedAsync(watcher, telemetry);
        using var run = ExternalTool.StartBackground(TrellisCli.FileName, [.. TrellisCli.Leading, "simulate", "--profile", "industrial", "--devices", "3", "--coap-devices", "2",
            "--coap", $"127.0.0.1:{host.Server.Port("coap")}", "--seconds", "14", "--interval-ms", "300", "--state", state,
            "--endpoint", host.Endpoint, "--data", host.DataDirectory, "--output", "json"]);
        Assert.True(await Eventually.TrueAsync(() => run.Stderr.Contains("2 of the devices talk CoAP", StringComparison.Ordinal), Timeout, Ct), run.Stderr);

        // Device 2 talks CoAP: its samples reach MQTT subscribers, and it follows a desired interval.
        Assert.True(await telemetry.WaitForLineAsync(l => l.Contains("\"vibrationRms\"", StringComparison.Ordinal), Timeout, Ct), "no CoAP telemetry: " + run.Stderr);
        var desired = await host.IotCallsAsync([("data:update_thing_shadow", new { thingName = "sim-industrial-00002", payload = new { state = new { desired = new { samplingIntervalMs = 400 } } } })], Ct);
        Assert.Equal(200, desired[0]!["status"]!.GetValue<int>());
        Assert.True(await Eventually.TrueAsync(async () =>
        {
            var shadow = await host.IotCallsAsync([("data:get_thing_shadow", new { thingName = "sim-industrial-00002" })], Ct);
            return shadow[0]!["body"]!["payload"]!["state"]!["reported"]?["samplingIntervalMs"]?.GetValue<int>() == 400;
        }, Timeout, Ct), "the CoAP device did not follow its desired sampling interval: " + run.Stderr);

        Assert.True(await run.WaitForExitAsync(Timeout, Ct), run.Stderr);
        Assert.True(run.ExitCode == 0, run.Stderr);
        var summary = JsonNode.Parse(string.Join('\n', run.Lines))!;
        Assert.True(summary["errors"]!.GetValue<long>() == 0, summary.ToJsonString());
        Assert.Equal(3, summary["peakConnected"]!.GetValue<long>());
        Assert.True(File.Exists(Path.Combine(state, "devices", "sim-industrial-00002.token")));
    }
}
