using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Broker;

/// <summary>
/// Policy effects through the live broker with a certificate device and mosquitto clients: an
/// explicit Deny wins over a wider Allow for publish, subscribe and receive, and a retained publish
/// needs iot:RetainPublish besides iot:Publish.
/// </summary>
[Collection(TrellisServerGroup.Name)]
public sealed class PolicyEffectTests(TrellisHost host)
{
    private const string AllowWithDeny = """
        {"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
          {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"arn:aws:iot:*:*:topic/devices/${iot:Connection.Thing.ThingName}/*"},
          {"Effect":"Allow","Action":"iot:Subscribe","Resource":"arn:aws:iot:*:*:topicfilter/devices/${iot:Connection.Thing.ThingName}/*"},
          {"Effect":"Allow","Action":"iot:RetainPublish","Resource":"arn:aws:iot:*:*:topic/devices/${iot:Connection.Thing.ThingName}/state"},
          {"Effect":"Deny","Action":["iot:Publish","iot:Receive"],"Resource":"arn:aws:iot:*:*:topic/devices/${iot:Connection.Thing.ThingName}/secret"},
          {"Effect":"Deny","Action":"iot:Subscribe","Resource":"arn:aws:iot:*:*:topicfilter/devices/${iot:Connection.Thing.ThingName}/secret"}]}
        """;

    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task An_explicit_deny_beats_a_wider_allow_for_publish_subscribe_and_receive()
    {
        var device = await host.ProvisionAsync(TrellisHost.Unique("deny"), TrellisHost.Unique("pol"), AllowWithDeny, Ct);
        var (secret, open) = ($"devices/{device.ThingName}/secret", $"devices/{device.ThingName}/open");

        // Subscribe: the SUBACK refuses the denied filter (0x87) and grants the allowed one.
        var sub = await ExternalTool.RunCheckedAsync("mosquitto_sub", [.. host.TlsArgs(device, version: "mqttv5"), "-t", secret, "-t", open, "-q", "1", "-d", "-E"], Timeout, cancellationToken: Ct);
        Assert.Contains("Subscribed (mid: 1): 135, 1", sub.Stdout, StringComparison.Ordinal);

        // Publish: refused on the denied topic, accepted next to it.
        var denied = await ExternalTool.RunAsync("mosquitto_pub", [.. host.TlsArgs(device, version: "mqttv5"), "-t", secret, "-m", "x", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(denied.ExitCode == 0 && denied.Output.Contains("Not authorized", StringComparison.Ordinal), denied.Output);
        await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. host.TlsArgs(device, version: "mqttv5"), "-t", open, "-m", "ok", "-q", "1"], Timeout, cancellationToken: Ct);

        // Receive: a wildcard subscription allowed by the policy does not deliver what iot:Receive denies.
        using var watching = ExternalTool.StartBackground("mosquitto_sub", [.. host.TlsArgs(device), "-t", $"devices/{device.ThingName}/+", "-q", "1", "-v"]);
        await host.WaitSubscribedAsync(device.ThingName, watching);
        await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("op")), "-t", secret, "-m", "hidden", "-q", "1"], Timeout, cancellationToken: Ct);
        await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("op")), "-t", open, "-m", "after", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(await watching.WaitForLineAsync(l => l == $"{open} after", Timeout, Ct), string.Join('|', watching.Lines));
        Assert.DoesNotContain(watching.Lines, l => l.StartsWith(secret, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_retained_publish_needs_iot_retain_publish()
    {
        var device = await host.ProvisionAsync(TrellisHost.Unique("ret"), TrellisHost.Unique("pol"), AllowWithDeny, Ct);
        var (state, other) = ($"devices/{device.ThingName}/state", $"devices/{device.ThingName}/other");

        await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. host.TlsArgs(device, version: "mqttv5"), "-t", state, "-m", "on", "-r", "-q", "1"], Timeout, cancellationToken: Ct);
        var refused = await ExternalTool.RunAsync("mosquitto_pub", [.. host.TlsArgs(device, version: "mqttv5"), "-t", other, "-m", "on", "-r", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(refused.ExitCode == 0 && refused.Output.Contains("Not authorized", StringComparison.Ordinal), refused.Output);

        // What was retained: the state topic only.
        var kept = await ExternalTool.RunCheckedAsync("mosquitto_sub", [.. host.AdminArgs(TrellisHost.Unique("r")), "-t", state, "-C", "1", "-W", "10"], Timeout, cancellationToken: Ct);
        Assert.Equal("on", kept.Stdout.Trim());
        var otherId = TrellisHost.Unique("r");
        using var watcher = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(otherId), "-t", other, "-v"]);
        await host.WaitSubscribedAsync(otherId, watcher);
        await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("op")), "-t", other, "-m", "live", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(await watcher.WaitForLineAsync(l => l == $"{other} live", Timeout, Ct), string.Join('|', watcher.Lines));
        Assert.Equal([$"{other} live"], watcher.Lines);
    }
}
