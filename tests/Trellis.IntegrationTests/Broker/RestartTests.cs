using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Broker;

/// <summary>State that must survive a restart of the server on the same data folder.</summary>
public sealed class RestartTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private readonly TrellisHost _host = new();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public ValueTask InitializeAsync() => _host.InitializeAsync();

    public ValueTask DisposeAsync() => _host.DisposeAsync();

    [Theory]
    [InlineData("mqttv311")]
    [InlineData("mqttv5")]
    public async Task Retained_messages_and_queued_session_messages_survive_a_restart(string version)
    {
        var clientId = TrellisHost.Unique("persist");
        var queueTopic = TrellisHost.Unique("queue/");
        var retainedTopic = TrellisHost.Unique("retained/");
        var sessionArgs = version == "mqttv5" ? new[] { "-x", "3600" } : [];

        // A persistent session subscribes, then goes offline.
        var subscribe = await ExternalTool.RunAsync("mosquitto_sub", [.. _host.AdminArgs(clientId, version), "-c", .. sessionArgs, "-q", "1", "-t", queueTopic, "-E"], Timeout, cancellationToken: Ct);
        Assert.True(subscribe.ExitCode == 0, subscribe.Output);
        await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. _host.AdminArgs(TrellisHost.Unique("p")), "-t", retainedTopic, "-m", "retained-value", "-r", "-q", "1"], Timeout, cancellationToken: Ct);
        for (var i = 1; i <= 3; i++)
        {
            var pub = await ExternalTool.RunAsync("mosquitto_pub", [.. _host.AdminArgs(TrellisHost.Unique("p")), "-t", queueTopic, "-m", $"queued-{i}", "-q", "1"], Timeout, cancellationToken: Ct);
            Assert.True(pub.ExitCode == 0, pub.Output);
        }

        await _host.RestartAsync();

        var resumed = await ExternalTool.RunAsync("mosquitto_sub", [.. _host.AdminArgs(clientId, version), "-c", .. sessionArgs, "-q", "1", "-t", queueTopic, "-C", "3", "-W", "8"], Timeout, cancellationToken: Ct);
        var retained = await ExternalTool.RunAsync("mosquitto_sub", [.. _host.AdminArgs(TrellisHost.Unique("s")), "-t", retainedTopic, "-C", "1", "-W", "5"], Timeout, cancellationToken: Ct);

        Assert.Equal(["queued-1", "queued-2", "queued-3"], resumed.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal("retained-value", retained.Stdout.Trim());
    }

    [Fact]
    public async Task Registry_and_credentials_survive_a_restart()
    {
        var device = await _host.ProvisionAsync(TrellisHost.Unique("dev"), TrellisHost.Unique("pol"), Policies.PerThing, Ct);
        var accessKey = _host.Server.AccessKeys.AdminAccessKeyId;

        await _host.RestartAsync();
        var pub = await ExternalTool.RunAsync("mosquitto_pub", [.. _host.TlsArgs(device), "-t", $"devices/{device.ThingName}/x", "-m", "after-restart", "-q", "1"], Timeout, cancellationToken: Ct);

        Assert.Equal(accessKey, _host.Server.AccessKeys.AdminAccessKeyId);
        Assert.True(pub.ExitCode == 0, pub.Output);
    }
}
