using System.Globalization;
using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary><c>trellis pub</c> and <c>trellis sub</c> as real processes, as a device from <c>trellis provision</c> and with API keys, beside Debian's mosquitto clients.</summary>
[Collection(TrellisServerGroup.Name)]
public sealed class CliMqttTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Pub_and_sub_work_as_a_device_and_as_a_key_and_say_what_the_broker_refused()
    {
        var thing = TrellisHost.Unique("clipub");
        var folder = Path.Combine(host.DataDirectory, thing);
        var provisioned = await TrellisCli.RunAsync(host, ["provision", "--thing", thing, "--out", folder], Ct);
        Assert.True(provisioned.ExitCode == 0, provisioned.Output);
        var mqtt = "127.0.0.1:" + host.MqttPort.ToString(CultureInfo.InvariantCulture);

        // The admin key watches the device's topics; the device publishes from its folder (its endpoint from device.json).
        using var watching = ExternalTool.StartBackground(TrellisCli.FileName,
            [.. TrellisCli.Leading, "sub", "-t", $"devices/{thing}/#", "-v", "-C", "2", "--mqtt", mqtt, "--data", host.DataDirectory, "--profile", "trellis"]);
        Assert.True(await Eventually.TrueAsync(() => watching.Stderr.Contains("subscribed to", StringComparison.Ordinal), Timeout, Ct), watching.Stderr);
        var pub = await TrellisCli.RunAsync(host, ["pub", "--device", folder, "-t", $"devices/{thing}/temp", "-m", "21.5", "--repeat", "2"], Ct);
        Assert.True(pub.ExitCode == 0, pub.Output);
        Assert.Contains("2 message(s) acknowledged", pub.Stderr, StringComparison.Ordinal);
        Assert.True(await watching.WaitForExitAsync(Timeout, Ct), watching.Stderr);
        Assert.Equal(0, watching.ExitCode);
        Assert.Equal([$"devices/{thing}/temp 21.5", $"devices/{thing}/temp 21.5"], watching.Lines);

        // mosquitto retains a message; the device's sub gets it, flagged retained, as JSON.
        var retained = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("clipubr")), "-t", $"devices/{thing}/state", "-m", "on", "-q", "1", "-r"], Timeout, cancellationToken: Ct);
        Assert.True(retained.ExitCode == 0, retained.Output);
        var got = await TrellisCli.RunAsync(host, ["sub", "--device", folder, "-t", $"devices/{thing}/state", "-C", "1", "-W", "20", "--output", "json"], Ct);
        Assert.True(got.ExitCode == 0, got.Output);
        var message = JsonNode.Parse(got.Stdout)!;
        Assert.Equal(("on", true), (message["payload"]!.GetValue<string>(), message["retain"]!.GetValue<bool>()));

        // What the device's policy refuses is said, with the reason code, and exits 1.
        var refused = await TrellisCli.RunAsync(host, ["pub", "--device", folder, "-t", "devices/someone-else/temp", "-m", "x"], Ct);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("NotAuthorized (0x87)", refused.Stderr, StringComparison.Ordinal);
        var subRefused = await TrellisCli.RunAsync(host, ["sub", "--device", folder, "-t", "devices/someone-else/#", "-W", "10"], Ct);
        Assert.Equal(1, subRefused.ExitCode);
        Assert.Contains("subscription to 'devices/someone-else/#' refused: NotAuthorized", subRefused.Stderr, StringComparison.Ordinal);
        var wrongId = await TrellisCli.RunAsync(host, ["pub", "--device", folder, "-i", thing + "-other", "-t", $"devices/{thing}/temp", "-m", "x"], Ct);
        Assert.Equal(1, wrongId.ExitCode);
        Assert.Contains("refused the connection", wrongId.Stderr, StringComparison.Ordinal);

        // A viewer key may subscribe but not publish; nothing arrives in time: exit 4.
        var viewer = await host.CreateApiUserAsync(TrellisHost.Unique("clipubv"), "viewer", Ct);
        var asViewer = new Dictionary<string, string> { ["AWS_ACCESS_KEY_ID"] = viewer.KeyId, ["AWS_SECRET_ACCESS_KEY"] = viewer.Secret };
        var viewerPub = await ExternalTool.RunAsync(TrellisCli.FileName, [.. TrellisCli.Leading, "pub", "-t", $"devices/{thing}/temp", "-m", "x", "--mqtt", mqtt], Timeout, asViewer, Ct);
        Assert.Equal(1, viewerPub.ExitCode);
        Assert.Contains("NotAuthorized", viewerPub.Stderr, StringComparison.Ordinal);
        var quiet = await ExternalTool.RunAsync(TrellisCli.FileName, [.. TrellisCli.Leading, "sub", "-t", $"devices/{thing}/nothing", "-W", "1", "--mqtt", mqtt], Timeout, asViewer, Ct);
        Assert.True(quiet.ExitCode == 4, quiet.Output);
        Assert.Contains("ran out after 0 message(s)", quiet.Stderr, StringComparison.Ordinal);

        var unreachable = await TrellisCli.RunAsync(host, ["pub", "-t", "x", "-m", "y", "--mqtt", "127.0.0.1:1"], Ct);
        Assert.Equal(3, unreachable.ExitCode);
        Assert.Contains("cannot reach the broker", unreachable.Stderr, StringComparison.Ordinal);
    }
}
