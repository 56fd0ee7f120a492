using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Broker;

/// <summary>The provisioning flow of AWS's tutorials, driven by boto3, then mosquitto clients over TLS with the issued files.</summary>
[Collection(TrellisServerGroup.Name)]
public sealed class DeviceIdentityTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    [Theory]
    [InlineData("mqttv311")]
    [InlineData("mqttv5")]
    public async Task Provisioned_device_publishes_and_receives_within_its_policy(string version)
    {
        var ct = TestContext.Current.CancellationToken;
        var device = await host.ProvisionAsync(TrellisHost.Unique("dev"), TrellisHost.Unique("pol"), Policies.PerThing, ct);
        var topic = $"devices/{device.ThingName}/temp";

        // The device subscribes to its own topics; an operator publishes to it.
        using var deviceSub = ExternalTool.StartBackground("mosquitto_sub", [.. host.TlsArgs(device, version: version), "-t", $"devices/{device.ThingName}/#", "-q", "1", "-v"]);
        await host.WaitSubscribedAsync(device.ThingName, deviceSub);
        var pub = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("op")), "-t", topic, "-m", "21.5", "-q", "1"], Timeout, cancellationToken: ct);
        Assert.True(pub.ExitCode == 0, pub.Output);
        Assert.True(await deviceSub.WaitForLineAsync(l => l == $"{topic} 21.5", Timeout, ct), "device did not receive: " + string.Join('|', deviceSub.Lines) + deviceSub.Stderr);

        // The device publishes; an operator subscription sees it.
        var operatorId = TrellisHost.Unique("op");
        using var operatorSub = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(operatorId), "-t", topic + "/out", "-v"]);
        await host.WaitSubscribedAsync(operatorId, operatorSub);
        deviceSub.Dispose();
        var devicePub = await ExternalTool.RunAsync("mosquitto_pub", [.. host.TlsArgs(device, version: version), "-t", topic + "/out", "-m", "hello", "-q", "1"], Timeout, cancellationToken: ct);
        Assert.True(devicePub.ExitCode == 0, devicePub.Output);
        Assert.True(await operatorSub.WaitForLineAsync(l => l == $"{topic}/out hello", Timeout, ct), "operator did not receive: " + string.Join('|', operatorSub.Lines));
    }

    [Fact]
    public async Task Publish_outside_the_policy_is_refused_with_mqtt5_reason_code()
    {
        var ct = TestContext.Current.CancellationToken;
        var device = await host.ProvisionAsync(TrellisHost.Unique("dev"), TrellisHost.Unique("pol"), Policies.PerThing, ct);
        var forbidden = $"other/{device.ThingName}";
        var watcherId = TrellisHost.Unique("op");
        using var watcher = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(watcherId), "-t", forbidden, "-t", $"devices/{device.ThingName}/marker", "-v"]);
        await host.WaitSubscribedAsync(watcherId, watcher, filters: 2);

        var denied = await ExternalTool.RunAsync("mosquitto_pub", [.. host.TlsArgs(device, version: "mqttv5"), "-t", forbidden, "-m", "x", "-q", "1"], Timeout, cancellationToken: ct);
        var marker = await ExternalTool.RunAsync("mosquitto_pub", [.. host.TlsArgs(device, version: "mqttv5"), "-t", $"devices/{device.ThingName}/marker", "-m", "m", "-q", "1"], Timeout, cancellationToken: ct);

        Assert.True(denied.ExitCode == 0 && denied.Output.Contains("Not authorized", StringComparison.Ordinal), denied.Output);
        Assert.True(host.Server.Broker.Metrics.DeniedPublishes > 0);
        Assert.Equal(0, marker.ExitCode);
        Assert.True(await watcher.WaitForLineAsync(l => l.EndsWith("/marker m", StringComparison.Ordinal), Timeout, ct));
        Assert.DoesNotContain(watcher.Lines, l => l.StartsWith(forbidden, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Publish_outside_the_policy_closes_an_mqtt311_connection()
    {
        var ct = TestContext.Current.CancellationToken;
        var device = await host.ProvisionAsync(TrellisHost.Unique("dev"), TrellisHost.Unique("pol"), Policies.PerThing, ct);
        var forbidden = $"other/{device.ThingName}";
        var watcherId = TrellisHost.Unique("op");
        using var watcher = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(watcherId), "-t", forbidden, "-t", $"devices/{device.ThingName}/marker", "-v"]);
        await host.WaitSubscribedAsync(watcherId, watcher, filters: 2);

        var denied = await ExternalTool.RunAsync("mosquitto_pub", [.. host.TlsArgs(device), "-t", forbidden, "-m", "x", "-q", "1"], Timeout, cancellationToken: ct);
        var marker = await ExternalTool.RunAsync("mosquitto_pub", [.. host.TlsArgs(device), "-t", $"devices/{device.ThingName}/marker", "-m", "m", "-q", "1"], Timeout, cancellationToken: ct);

        // Refused, not hung: mosquitto_pub exits with an error well before our time-out (-1).
        Assert.True(denied.ExitCode is not (0 or -1), $"exit {denied.ExitCode}: {denied.Output}");
        Assert.True(marker.ExitCode == 0, marker.Output);
        Assert.True(await watcher.WaitForLineAsync(l => l.EndsWith("/marker m", StringComparison.Ordinal), Timeout, ct));
        Assert.DoesNotContain(watcher.Lines, l => l.StartsWith(forbidden, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("mqttv311")]
    [InlineData("mqttv5")]
    public async Task Subscription_outside_the_policy_is_refused(string version)
    {
        var ct = TestContext.Current.CancellationToken;
        var device = await host.ProvisionAsync(TrellisHost.Unique("dev"), TrellisHost.Unique("pol"), Policies.PerThing, ct);

        var result = await ExternalTool.RunAsync("mosquitto_sub", [.. host.TlsArgs(device, version: version), "-t", "devices/#", "-C", "1", "-W", "5"], Timeout, cancellationToken: ct);

        Assert.Contains("All subscription requests were denied", result.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Second_device_cannot_read_or_write_the_first_devices_topics()
    {
        var ct = TestContext.Current.CancellationToken;
        var policy = TrellisHost.Unique("pol");
        var first = await host.ProvisionAsync(TrellisHost.Unique("dev"), policy, Policies.PerThing, ct);
        var second = await host.ProvisionAsync(TrellisHost.Unique("dev"), policy, Policies.PerThing, ct);
        using var firstSub = ExternalTool.StartBackground("mosquitto_sub", [.. host.TlsArgs(first, version: "mqttv5"), "-t", $"devices/{first.ThingName}/#", "-v"]);
        await host.WaitSubscribedAsync(first.ThingName, firstSub);

        var read = await ExternalTool.RunAsync("mosquitto_sub", [.. host.TlsArgs(second, version: "mqttv5"), "-t", $"devices/{first.ThingName}/#", "-C", "1", "-W", "5"], Timeout, cancellationToken: ct);
        var write = await ExternalTool.RunAsync("mosquitto_pub", [.. host.TlsArgs(second, version: "mqttv5"), "-t", $"devices/{first.ThingName}/cmd", "-m", "intrusion", "-q", "1"], Timeout, cancellationToken: ct);
        var impersonate = await ExternalTool.RunAsync("mosquitto_pub", [.. host.TlsArgs(second, clientId: first.ThingName, version: "mqttv5"), "-t", $"devices/{first.ThingName}/cmd", "-m", "intrusion", "-q", "1"], Timeout, cancellationToken: ct);
        var own = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("op")), "-t", $"devices/{first.ThingName}/cmd", "-m", "legit", "-q", "1"], Timeout, cancellationToken: ct);

        Assert.Contains("All subscription requests were denied", read.Output, StringComparison.Ordinal);
        Assert.Contains("Not authorized", write.Output, StringComparison.Ordinal);
        Assert.Contains("not autho", impersonate.Output, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(0, own.ExitCode);
        Assert.True(await firstSub.WaitForLineAsync(l => l.EndsWith(" legit", StringComparison.Ordinal), Timeout, ct));
        Assert.DoesNotContain(firstSub.Lines, l => l.Contains("intrusion", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Revoked_certificate_is_cut_off_within_one_second_and_refused_afterwards()
    {
        var ct = TestContext.Current.CancellationToken;
        var device = await host.ProvisionAsync(TrellisHost.Unique("dev"), TrellisHost.Unique("pol"), Policies.PerThing, ct);
        using var sub = ExternalTool.StartBackground("mosquitto_sub", [.. host.TlsArgs(device, version: "mqttv5"), "-t", $"devices/{device.ThingName}/#"]);
        await host.WaitSubscribedAsync(device.ThingName, sub);

        var revoke = await ExternalTool.RunAsync("aws", ["iot", "update-certificate", "--certificate-id", device.CertificateId, "--new-status", "REVOKED", "--endpoint-url", host.Endpoint], Timeout, host.AwsEnvironment, ct);
        Assert.True(revoke.ExitCode == 0, revoke.Output);
        var revokedAt = DateTime.UtcNow;
        var gone = await Eventually.TrueAsync(() => !host.Server.Broker.ConnectedClientIds().Contains(device.ThingName), TimeSpan.FromSeconds(1), ct);
        var elapsed = DateTime.UtcNow - revokedAt;

        Assert.True(gone, $"still connected {elapsed.TotalMilliseconds:F0} ms after revocation");
        var again = await ExternalTool.RunAsync("mosquitto_pub", [.. host.TlsArgs(device), "-t", $"devices/{device.ThingName}/x", "-m", "1"], Timeout, cancellationToken: ct);
        Assert.Contains("not autho", again.Output, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Detaching_the_policy_stops_deliveries_on_existing_subscriptions()
    {
        var ct = TestContext.Current.CancellationToken;
        var policy = TrellisHost.Unique("pol");
        var device = await host.ProvisionAsync(TrellisHost.Unique("dev"), policy, Policies.PerThing, ct);
        var topic = $"devices/{device.ThingName}/cmd";
        using var sub = ExternalTool.StartBackground("mosquitto_sub", [.. host.TlsArgs(device, version: "mqttv5"), "-t", $"devices/{device.ThingName}/#", "-v"]);
        await host.WaitSubscribedAsync(device.ThingName, sub);
        await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("op")), "-t", topic, "-m", "before", "-q", "1"], Timeout, cancellationToken: ct);
        Assert.True(await sub.WaitForLineAsync(l => l.EndsWith(" before", StringComparison.Ordinal), Timeout, ct));

        var detach = await ExternalTool.RunAsync("aws", ["iot", "detach-policy", "--policy-name", policy, "--target", device.CertificateArn, "--endpoint-url", host.Endpoint], Timeout, host.AwsEnvironment, ct);
        Assert.True(detach.ExitCode == 0, detach.Output);
        await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("op")), "-t", topic, "-m", "after", "-q", "1"], Timeout, cancellationToken: ct);

        Assert.False(await sub.WaitForLineAsync(l => l.EndsWith(" after", StringComparison.Ordinal), TimeSpan.FromSeconds(1), ct));
    }
}
