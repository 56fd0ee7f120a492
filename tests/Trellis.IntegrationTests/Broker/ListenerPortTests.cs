using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Broker;

/// <summary>
/// A listening port is never shared between processes: a second <c>trellis serve</c> (or gateway)
/// on a port in use stops at start with one line naming the port and the flag to change, instead
/// of taking a share of the first one's connections.
/// </summary>
public sealed class ListenerPortTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_second_server_on_the_same_mqtt_port_is_refused_with_the_port_and_the_flag()
    {
        var root = Directory.CreateTempSubdirectory("ports").FullName;
        var port = HttpReceiver.FreePort();
        var first = await ServerProcess.StartAsync(Path.Combine(root, "a"), Ct, null, "--mqtt", $"127.0.0.1:{port}");
        try
        {
            var second = await ExternalTool.RunAsync(TrellisCli.FileName, [.. TrellisCli.Leading, "serve", "--mqtt", $"127.0.0.1:{port}", "--mqtts", "off", "--ws", "off", "--coap", "off", "--coaps", "off", "--http", "127.0.0.1:0"],
                Timeout, new Dictionary<string, string> { ["TRELLIS_DATA"] = Path.Combine(root, "b") }, Ct);
            Assert.Equal(1, second.ExitCode);
            Assert.Contains($"trellis: cannot start: TCP port 127.0.0.1:{port} is in use by another program", second.Stderr, StringComparison.Ordinal);
            Assert.Contains("give --mqtt another HOST:PORT", second.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", second.Output, StringComparison.Ordinal); // one line, no stack trace
            Assert.DoesNotContain("Hosting failed to start", second.Output, StringComparison.Ordinal);

            // Every connect still reaches the first server.
            for (var i = 0; i < 10; i++)
            {
                var probe = await ExternalTool.RunAsync("mosquitto_pub", [.. first.Anonymous($"probe{i}"), "-t", "ports/probe", "-m", "x"], Timeout, cancellationToken: Ct);
                Assert.True(probe.ExitCode == 0, probe.Output);
            }
        }
        finally
        {
            first.Dispose();
            Directory.Delete(root, recursive: true);
        }
    }
}
