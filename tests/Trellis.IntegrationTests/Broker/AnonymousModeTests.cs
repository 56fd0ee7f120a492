using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Broker;

/// <summary>--allow-anonymous: anonymous clients connect under an allow-all policy, and the server warns.</summary>
public sealed class AnonymousModeTests : IAsyncLifetime
{
    private readonly AnonymousHost _host = new();

    public ValueTask InitializeAsync() => _host.InitializeAsync();

    public ValueTask DisposeAsync() => _host.DisposeAsync();

    [Fact]
    public async Task Anonymous_clients_connect_and_the_server_warns()
    {
        var ct = TestContext.Current.CancellationToken;
        var port = _host.MqttPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        using var sub = ExternalTool.StartBackground("mosquitto_sub", ["-h", "127.0.0.1", "-p", port, "-t", "anon/t", "-V", "mqttv5"]);
        await _host.WaitSubscribersAsync("anon/t", peer: sub);

        var pub = await ExternalTool.RunAsync("mosquitto_pub", ["-h", "127.0.0.1", "-p", port, "-t", "anon/t", "-m", "hi", "-q", "1"], TimeSpan.FromSeconds(10), cancellationToken: ct);

        Assert.True(pub.ExitCode == 0, pub.Output);
        Assert.True(await sub.WaitForLineAsync(l => l == "hi", TimeSpan.FromSeconds(10), ct));
        Assert.True(_host.Logs.Contains("--allow-anonymous is on"));
    }

    private sealed class AnonymousHost() : TrellisHost(allowAnonymous: true);
}
