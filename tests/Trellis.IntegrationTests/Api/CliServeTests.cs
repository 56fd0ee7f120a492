using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary><c>trellis serve</c> as a real process: first start, printed ports, kill -9 durability, SIGTERM.</summary>
public sealed class CliServeTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);
    private readonly string _data = Path.Combine(Path.GetTempPath(), $"trellis-cli-{Guid.NewGuid():N}");

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Serve_creates_the_data_folder_prints_ports_and_keeps_acknowledged_messages_across_kill_9()
    {
        var clientId = TrellisHost.Unique("durable");
        using (var first = await ServerProcess.StartAsync(_data, Ct))
        {
            Assert.True(File.Exists(Path.Combine(_data, "ca.pem")));
            Assert.True(File.Exists(Path.Combine(_data, "credentials")));
            Assert.True(File.Exists(Path.Combine(_data, "trellis.db")));
            Assert.Contains("aws iot list-things", first.Banner, StringComparison.Ordinal);

            // The plain-TCP listener runs one epoll loop per CPU by default, and says so.
            var loops = Math.Clamp(Environment.ProcessorCount, 1, 64);
            Assert.Contains($", {loops} event loop{(loops == 1 ? "" : "s")}", first.Banner, StringComparison.Ordinal);

            var subscribe = await ExternalTool.RunAsync("mosquitto_sub", [.. first.Anonymous(clientId), "-c", "-q", "1", "-t", "durable/t", "-E"], Timeout, cancellationToken: Ct);
            Assert.True(subscribe.ExitCode == 0, subscribe.Output);
            for (var i = 1; i <= 3; i++)
            {
                var pub = await ExternalTool.RunAsync("mosquitto_pub", [.. first.Anonymous(TrellisHost.Unique("p")), "-t", "durable/t", "-m", $"m{i}", "-q", "1"], Timeout, cancellationToken: Ct);
                Assert.True(pub.ExitCode == 0, pub.Output);
            }

            // A shadow: created over HTTP (200), updated over MQTT (/update/accepted).
            var created = await IotDataAsync(first, """[{"op":"create_thing","thing":"durable-lamp"},{"op":"update","thing":"durable-lamp","payload":{"state":{"desired":{"on":true}}}}]""");
            Assert.Equal(200, created[1]!["status"]!.GetValue<int>());
            var accepted = await ExternalTool.RunAsync("mosquitto_rr", [.. first.Anonymous(TrellisHost.Unique("rr")), "-t", "$aws/things/durable-lamp/shadow/update", "-e", "$aws/things/durable-lamp/shadow/update/accepted", "-m", """{"state":{"reported":{"on":true}}}""", "-W", "10"], Timeout, cancellationToken: Ct);
            Assert.Contains("\"version\":2", accepted.Stdout, StringComparison.Ordinal);

            // No shutdown: the PUBACKs and the accepted shadow updates above must already mean "durable".
            first.Kill9();
        }

        using var second = await ServerProcess.StartAsync(_data, Ct);
        var resumed = await ExternalTool.RunAsync("mosquitto_sub", [.. second.Anonymous(clientId), "-c", "-q", "1", "-t", "durable/t", "-C", "3", "-W", "10"], Timeout, cancellationToken: Ct);

        Assert.Equal(["m1", "m2", "m3"], resumed.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        var shadow = await IotDataAsync(second, """[{"op":"get","thing":"durable-lamp"}]""");
        Assert.Equal("""{"desired":{"on":true},"reported":{"on":true}}""", shadow[0]!["body"]!["state"]!.ToJsonString());
        Assert.Equal(2, shadow[0]!["body"]!["version"]!.GetValue<int>());
        var exit = await second.TerminateAsync(Ct);
        Assert.Equal(0, exit);
        Assert.Contains("Saved", second.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bad_listen_address_stops_start_up_with_a_message()
    {
        var result = await ExternalTool.RunAsync(TrellisCli.FileName, [.. TrellisCli.Leading, "serve", "--data", _data, "--mqtt", "not-an-address"], Timeout, cancellationToken: Ct);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("--mqtt", result.Stderr, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_data, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>boto3 against a server process (Scripts/iotdata.py), with the credentials of its data folder.</summary>
    private async Task<System.Text.Json.Nodes.JsonArray> IotDataAsync(ServerProcess server, string operations)
    {
        var script = Path.Combine(AppContext.BaseDirectory, "Scripts", "iotdata.py");
        var env = new Dictionary<string, string>
        {
            ["AWS_SHARED_CREDENTIALS_FILE"] = Path.Combine(_data, "credentials"),
            ["AWS_PROFILE"] = "trellis",
            ["AWS_EC2_METADATA_DISABLED"] = "true",
        };
        var result = await ExternalTool.RunAsync("python3", [script, $"http://127.0.0.1:{server.HttpPort}", operations], TimeSpan.FromSeconds(60), env, Ct);
        Assert.True(result.ExitCode == 0, "iotdata.py failed: " + result.Output);
        return System.Text.Json.Nodes.JsonNode.Parse(result.Stdout)!.AsArray();
    }
}
