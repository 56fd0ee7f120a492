using System.Globalization;
using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Shadows;

/// <summary>
/// The device examples beyond .NET, run as a user runs them: samples/python-device with Debian's
/// python3-paho-mqtt (provisioning by claim, telemetry, following its shadow) and samples/c-device
/// built with Debian's libmosquitto-dev (certificate, telemetry, shadow deltas), with boto3 changing
/// the desired state and mosquitto_sub reading the telemetry.
/// </summary>
[Collection(TrellisServerGroup.Name)]
public sealed class DeviceExamplesTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static string Samples => Path.Combine(TrellisCli.RepositoryRoot(), "samples");

    [Fact]
    public async Task The_python_device_provisions_itself_by_claim_and_follows_its_shadow()
    {
        var env = new Dictionary<string, string> { ["TRELLIS_ENDPOINT"] = host.Endpoint, ["TRELLIS_DATA"] = host.DataDirectory, ["AWS_PROFILE"] = "trellis" };
        var claim = Path.Combine(host.DataDirectory, TrellisHost.Unique("claim"));
        var setup = await ExternalTool.RunAsync("sh", [Path.Combine(Samples, "python-device", "setup.sh"), claim], TimeSpan.FromSeconds(120), env, Ct);
        Assert.True(setup.ExitCode == 0, setup.Output);

        var serial = TrellisHost.Unique("py");
        var thing = "lamp-" + serial;
        var state = Path.Combine(host.DataDirectory, serial);
        using var device = ExternalTool.StartBackground("/usr/bin/python3",
            [Path.Combine(Samples, "python-device", "device.py"), "--claim", claim, "--template", "lamps-fleet", "--serial", serial, "--state", state, "--interval", "1", "--seconds", "40"]);
        Assert.True(await device.WaitForLineAsync(l => l == $"device: connected as {thing} to localhost:{host.MqttsPort.ToString(CultureInfo.InvariantCulture)}", Timeout, Ct),
            string.Join('\n', device.Lines) + device.Stderr);
        Assert.Contains(device.Lines, l => l.StartsWith($"device: registered as {thing}", StringComparison.Ordinal));
        Assert.Contains("lamps", host.Server.Registry.ListThingGroupsForThing(thing, null, null).Value!.Items.Select(g => g.Name));

        var desired = await host.IotCallsAsync([("data:update_thing_shadow", new { thingName = thing, payload = new { state = new { desired = new { power = "on", brightness = 80 } } } })], Ct);
        Assert.Equal(200, desired[0]!["status"]!.GetValue<int>());
        Assert.True(await device.WaitForLineAsync(l => l == """device: applied {"brightness": 80, "power": "on"}""", Timeout, Ct), string.Join('\n', device.Lines) + device.Stderr);
        Assert.True(await ReportedAsync(thing, "brightness", "80"), "the shadow's reported state did not follow");

        var telemetry = await ExternalTool.RunAsync("mosquitto_sub", [.. host.AdminArgs(TrellisHost.Unique("pyread")), "-t", $"devices/{thing}/telemetry", "-C", "1", "-W", "10"], Timeout, cancellationToken: Ct);
        Assert.True(telemetry.ExitCode == 0, telemetry.Output);
        Assert.Equal(80, JsonNode.Parse(telemetry.Stdout)!["brightness"]!.GetValue<int>());
    }

    [Fact]
    public async Task The_c_device_connects_with_its_certificate_publishes_and_reports_its_shadow_delta()
    {
        var build = Path.Combine(host.DataDirectory, TrellisHost.Unique("cbuild"));
        Directory.CreateDirectory(build);
        var compiled = await ExternalTool.RunAsync("cc", ["-Wall", "-Wextra", "-Werror", "-O2", "-o", Path.Combine(build, "device"), Path.Combine(Samples, "c-device", "device.c"), "-lmosquitto"], Timeout, cancellationToken: Ct);
        Assert.True(compiled.ExitCode == 0, compiled.Output);

        var thing = TrellisHost.Unique("cdev");
        var folder = Path.Combine(host.DataDirectory, thing);
        var provisioned = await TrellisCli.RunAsync(host, ["provision", "--thing", thing, "--out", folder], Ct);
        Assert.True(provisioned.ExitCode == 0, provisioned.Output);
        using var device = ExternalTool.StartBackground(Path.Combine(build, "device"), [folder, "40"]);
        Assert.True(await device.WaitForLineAsync(l => l == $"device: following $aws/things/{thing}/shadow/update/delta", Timeout, Ct), string.Join('\n', device.Lines) + device.Stderr);

        var desired = await host.IotCallsAsync([("data:update_thing_shadow", new { thingName = thing, payload = new { state = new { desired = new { color = "red" } } } })], Ct);
        Assert.Equal(200, desired[0]!["status"]!.GetValue<int>());
        Assert.True(await device.WaitForLineAsync(l => l == """device: reported {"color":"red"}""", Timeout, Ct), string.Join('\n', device.Lines) + device.Stderr);
        Assert.True(await ReportedAsync(thing, "color", "\"red\""), "the shadow's reported state did not follow");

        var telemetry = await ExternalTool.RunAsync("mosquitto_sub", [.. host.AdminArgs(TrellisHost.Unique("cread")), "-t", $"devices/{thing}/telemetry", "-C", "1", "-W", "10"], Timeout, cancellationToken: Ct);
        Assert.True(telemetry.ExitCode == 0, telemetry.Output);
        Assert.InRange(JsonNode.Parse(telemetry.Stdout)!["temperature"]!.GetValue<double>(), 0, 50);

        // Without a device folder it says how to make one and exits 2.
        var missing = await ExternalTool.RunAsync(Path.Combine(build, "device"), [Path.Combine(build, "nowhere")], Timeout, cancellationToken: Ct);
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("trellis provision", missing.Stderr, StringComparison.Ordinal);
    }

    private Task<bool> ReportedAsync(string thing, string member, string json) => Eventually.TrueAsync(async () =>
    {
        var shadow = await host.IotCallsAsync([("data:get_thing_shadow", new { thingName = thing })], Ct);
        return shadow[0]!["body"]?["payload"]?["state"]?["reported"]?[member]?.ToJsonString() == json;
    }, Timeout, Ct);
}
