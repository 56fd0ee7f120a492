using System.Net.Sockets;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Broker;

/// <summary>
/// After a burst of connects, and again after they all go, the broker compacts its heap once the
/// connection count holds still (Broker:SettleHeapQuietSeconds), says so in its log, and keeps
/// serving: a mosquitto client publishes and receives right after. With the setting at 0 nothing
/// is compacted.
/// </summary>
public sealed class HeapSettleTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(1, true)]
    [InlineData(0, false)]
    public async Task The_heap_is_compacted_once_a_burst_of_connects_or_disconnects_settles(int quietSeconds, bool settles)
    {
        await using var host = new SettleHost(quietSeconds);
        await host.InitializeAsync();
        bool Settled(int connections) => host.Logs.Entries.Any(e => e.Message.Contains($"Connections held at {connections} after a burst: compacted the heap", StringComparison.Ordinal));

        // 1 200 idle clients (a quarter more than the 1 000 a settle needs at least).
        var clients = new List<TcpClient>();
        try
        {
            for (var i = 0; i < 1200; i++)
            {
                var client = new TcpClient();
                await client.ConnectAsync("127.0.0.1", host.MqttPort, Ct);
                await client.GetStream().WriteAsync(RawMqtt.Connect($"settle-{i}", null, null), Ct);
                clients.Add(client);
            }

            Assert.True(await Eventually.TrueAsync(() => host.Server.Broker.ConnectedClientIds().Count >= 1200, Timeout, Ct));
            Assert.Equal(settles, await Eventually.TrueAsync(() => Settled(1200), TimeSpan.FromSeconds(settles ? 20 : 5), Ct));
        }
        finally
        {
            foreach (var client in clients)
            {
                client.Dispose();
            }
        }

        // All gone: settled again (at least 10 s after the first), and the broker serves as before.
        Assert.True(await Eventually.TrueAsync(() => host.Server.Broker.ConnectedClientIds().Count == 0, Timeout, Ct));
        Assert.Equal(settles, await Eventually.TrueAsync(() => Settled(0), TimeSpan.FromSeconds(settles ? 25 : 5), Ct));
        var topic = TrellisHost.Unique("settle/");
        using var sub = ExternalTool.StartBackground("mosquitto_sub", ["-h", "127.0.0.1", "-p", host.MqttPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "-i", TrellisHost.Unique("settlesub"), "-t", topic, "-C", "1"]);
        Assert.True(await Eventually.TrueAsync(() => host.Server.Broker.HasSubscribers(topic), Timeout, Ct), sub.Stderr);
        var pub = await ExternalTool.RunAsync("mosquitto_pub", ["-h", "127.0.0.1", "-p", host.MqttPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "-t", topic, "-m", "after the settle", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(pub.ExitCode == 0, pub.Output);
        Assert.True(await sub.WaitForLineAsync(l => l == "after the settle", Timeout, Ct), string.Join('\n', sub.Lines) + sub.Stderr);
    }

    private sealed class SettleHost(int quietSeconds) : TrellisHost(true, b => b.SettleHeapQuietSeconds = quietSeconds);
}
