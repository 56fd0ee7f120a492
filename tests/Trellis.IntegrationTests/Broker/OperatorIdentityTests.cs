using System.Globalization;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Broker;

/// <summary>
/// API keys used as MQTT credentials are people's and services' identities, never a device's: a
/// viewer only subscribes and receives, no key connects with a registered thing's name, and no key
/// takes over or resumes a session a device holds. Devices with certificates and keys of each role,
/// all through Debian's mosquitto clients.
/// </summary>
[Collection(TrellisServerGroup.Name)]
public sealed class OperatorIdentityTests(TrellisHost host)
{
    private const string AnyClientPolicy = """{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:Connect","iot:Publish","iot:Subscribe","iot:Receive"],"Resource":"*"}]}""";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_viewer_key_with_a_things_client_id_is_refused_and_the_device_stays_connected()
    {
        var thing = TrellisHost.Unique("opdev");
        var device = await host.ProvisionAsync(thing, thing + "-policy", AnyClientPolicy, Ct);
        var topic = $"cmd/{thing}";
        using var connected = ExternalTool.StartBackground("mosquitto_sub", [.. host.TlsArgs(device), "-t", topic, "-q", "1"]);
        await host.WaitSubscribedAsync(thing, connected, topic);

        foreach (var role in new[] { "viewer", "operator" })
        {
            var key = await UserAsync(role);
            var refused = await ExternalTool.RunAsync("mosquitto_sub", [.. KeyArgs(key, thing), "-t", topic, "-C", "1", "-W", "5"], Timeout, cancellationToken: Ct);
            Assert.True(refused.ExitCode != 0 && refused.Output.Contains("not authori", StringComparison.Ordinal), $"{role}: exit {refused.ExitCode}: {refused.Output}");
        }

        // The device was not kicked off: it still receives on its first connection.
        var pub = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("pub")), "-t", topic, "-m", "still-here", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(pub.ExitCode == 0, pub.Output);
        Assert.True(await connected.WaitForLineAsync(l => l.EndsWith("still-here", StringComparison.Ordinal), Timeout, Ct), string.Join('\n', connected.Lines));
        Assert.False(connected.HasExited, connected.Stderr);
    }

    [Fact]
    public async Task An_operator_key_never_resumes_a_devices_offline_session_and_the_device_gets_its_messages()
    {
        var thing = TrellisHost.Unique("opsess");
        var device = await host.ProvisionAsync(thing, thing + "-policy", AnyClientPolicy, Ct);
        var clientId = thing + "-session"; // not a thing's name: only the session's owner protects it
        var topic = $"cmd/{clientId}";

        var subscribed = await ExternalTool.RunAsync("mosquitto_sub", [.. host.TlsArgs(device, clientId), "-c", "-q", "1", "-t", topic, "-E"], Timeout, cancellationToken: Ct);
        Assert.True(subscribed.ExitCode == 0, subscribed.Output);
        var pub = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("pub")), "-t", topic, "-m", "queued", "-q", "1", "--repeat", "50"], Timeout, cancellationToken: Ct);
        Assert.True(pub.ExitCode == 0, pub.Output);

        foreach (var role in new[] { "viewer", "operator", "admin" })
        {
            var key = await UserAsync(role);
            var taken = await ExternalTool.RunAsync("mosquitto_sub", [.. KeyArgs(key, clientId), "-c", "-q", "1", "-t", topic, "-C", "1", "-W", "5"], Timeout, cancellationToken: Ct);
            Assert.True(taken.ExitCode != 0 && taken.Output.Contains("not authori", StringComparison.Ordinal), $"{role}: exit {taken.ExitCode}: {taken.Output}");
            Assert.DoesNotContain("queued", taken.Stdout, StringComparison.Ordinal);
        }

        var resumed = await ExternalTool.RunAsync("mosquitto_sub", [.. host.TlsArgs(device, clientId), "-c", "-q", "1", "-t", topic, "-C", "50", "-W", "10"], Timeout, cancellationToken: Ct);
        Assert.True(resumed.ExitCode == 0, resumed.Output);
        Assert.Equal(50, resumed.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Count(l => l == "queued"));
    }

    [Fact]
    public async Task A_viewer_key_subscribes_and_receives_but_cannot_publish_and_an_operator_can()
    {
        var viewer = await UserAsync("viewer");
        var operatorKey = await UserAsync("operator");
        var topic = TrellisHost.Unique("opv/");
        var watcher = TrellisHost.Unique("watch");
        using var watching = ExternalTool.StartBackground("mosquitto_sub", [.. KeyArgs(viewer, watcher), "-t", topic, "-q", "1"]);
        await host.WaitSubscribedAsync(watcher, watching, topic);

        // MQTT 5: the refusal is a PUBACK with 0x87, which mosquitto_pub reports (and still exits 0).
        var refused = await ExternalTool.RunAsync("mosquitto_pub", [.. KeyArgs(viewer, TrellisHost.Unique("vp"), "mqttv5"), "-t", topic, "-m", "from-viewer", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(refused.ExitCode == 0 && refused.Output.Contains("Publish 1 failed: Not authorized", StringComparison.Ordinal), refused.Output);
        var sent = await ExternalTool.RunAsync("mosquitto_pub", [.. KeyArgs(operatorKey, TrellisHost.Unique("op")), "-t", topic, "-m", "from-operator", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(sent.ExitCode == 0, sent.Output);

        Assert.True(await watching.WaitForLineAsync(l => l.EndsWith("from-operator", StringComparison.Ordinal), Timeout, Ct), string.Join('\n', watching.Lines));
        Assert.DoesNotContain(watching.Lines, l => l.EndsWith("from-viewer", StringComparison.Ordinal));
    }

    private List<string> KeyArgs((string KeyId, string Secret) key, string clientId, string version = "mqttv311") =>
    [
        "-h", "127.0.0.1", "-p", host.MqttPort.ToString(CultureInfo.InvariantCulture), "-u", key.KeyId, "-P", key.Secret, "-i", clientId, "-V", version,
    ];

    private Task<(string KeyId, string Secret)> UserAsync(string role) => host.CreateApiUserAsync(TrellisHost.Unique(role), role, Ct);
}
