using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Broker;

/// <summary>
/// Thing connectivity (AWS GetThingConnectivityData through boto3): online from the CONNACK,
/// offline at a clean disconnect or 1.5 × keep-alive after a client goes silent (a mosquitto
/// client stopped with SIGSTOP), with AWS's reasons and presence events; after kill -9 and a
/// restart, things that were online are offline with SERVER_ERROR.
/// </summary>
public sealed class ConnectivityTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly string _data = Path.Combine(Path.GetTempPath(), "trellis-connectivity-" + Guid.NewGuid().ToString("N")[..8]);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_thing_is_online_until_it_leaves_or_its_keep_alive_lapses_and_offline_after_a_crash()
    {
        var (silent, polite, other) = ("sensor-silent", "sensor-polite", "sensor-crash");
        using (var server = await ServerProcess.StartAsync(_data, Ct))
        {
            var setup = await server.IotCallsAsync([
                ("create_thing", new { thingName = silent }),
                ("create_thing", new { thingName = polite }),
                ("create_thing", new { thingName = other }),
                ("get_thing_connectivity_data", new { thingName = silent }),
                ("get_thing_connectivity_data", new { thingName = "no-such-thing" }),
            ], Ct);
            Assert.Equal((false, "NONE"), (setup[3]!["body"]!["connected"]!.GetValue<bool>(), setup[3]!["body"]!["disconnectReason"]!.GetValue<string>()));
            Assert.Equal(404, setup[4]!["status"]!.GetValue<int>());

            using var presence = ExternalTool.StartBackground("mosquitto_sub", [.. server.Anonymous("watcher"), "-t", "$aws/events/presence/+/+", "-v"]);
            using var device = ExternalTool.StartBackground("mosquitto_sub", [.. server.Anonymous(silent), "-t", "devices/silent", "-k", "5"]);
            using var survivor = ExternalTool.StartBackground("mosquitto_sub", [.. server.Anonymous(other), "-t", "devices/other", "-k", "60"]);
            Assert.True(await Eventually.TrueAsync(async () => await ConnectedAsync(server, silent) && await ConnectedAsync(server, other), Timeout, Ct), "not online after connecting");
            var online = await StateAsync(server, silent);
            Assert.True(online["timestamp"] is not null);

            // Silent: stopped, it sends no PINGREQ; the server must close it 7.5 s after its last packet
            // (which came at most 5 s before the stop), within its once-a-second sweep. Measured to the
            // server's own disconnect time, not to when a poll (a python start-up each) saw it.
            var stoppedAt = DateTimeOffset.UtcNow;
            await ExternalTool.RunCheckedAsync("kill", ["-STOP", device.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)], Timeout, cancellationToken: Ct);
            Assert.True(await Eventually.TrueAsync(async () => !await ConnectedAsync(server, silent), Timeout, Ct));
            var offline = await StateAsync(server, silent);
            var closedAfter = DateTimeOffset.FromUnixTimeMilliseconds((long)(offline["timestamp"]!.GetValue<double>() * 1000)) - stoppedAt;
            Assert.True(closedAfter > TimeSpan.Zero && closedAfter < TimeSpan.FromSeconds(8.5 + 0.5), $"offline {closedAfter.TotalSeconds:0.0} s after the stop");
            Assert.Equal("MQTT_KEEP_ALIVE_TIMEOUT", offline["disconnectReason"]!.GetValue<string>());
            await ExternalTool.RunAsync("kill", ["-KILL", device.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)], Timeout, cancellationToken: Ct);

            // Polite: publishes and disconnects.
            await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. server.Anonymous(polite), "-t", "devices/polite", "-m", "hi"], Timeout, cancellationToken: Ct);
            Assert.True(await Eventually.TrueAsync(async () => (await StateAsync(server, polite))["disconnectReason"]?.GetValue<string>() == "CLIENT_INITIATED_DISCONNECT", Timeout, Ct));
            Assert.True(await presence.WaitForLineAsync(l => l.StartsWith($"$aws/events/presence/disconnected/{silent} ", StringComparison.Ordinal) && l.Contains("MQTT_KEEP_ALIVE_TIMEOUT", StringComparison.Ordinal), Timeout, Ct), string.Join('\n', presence.Lines));

            // The fleet at a glance (SigV4) and the probes (unsigned, for orchestrators).
            var summary = (await server.SignedAsync("GET", "/api/fleet/summary", null, Ct))["body"]!;
            Assert.Equal((3L, 1), (summary["things"]!.GetValue<long>(), summary["online"]!.GetValue<int>()));
            Assert.True(summary["storageBytes"]!.GetValue<long>() > 0);
            var ready = await ExternalTool.RunCheckedAsync("curl", ["-s", "-w", "\n%{http_code}", server.Endpoint + "/readyz"], Timeout, cancellationToken: Ct);
            Assert.EndsWith("\n200", ready.Stdout, StringComparison.Ordinal);
            Assert.Equal("ok", JsonNode.Parse(ready.Stdout[..ready.Stdout.LastIndexOf('\n')])!["checks"]!["registry"]!.GetValue<string>());
            Assert.Equal("200", (await ExternalTool.RunCheckedAsync("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", server.Endpoint + "/healthz"], Timeout, cancellationToken: Ct)).Stdout);
            Assert.Equal("403", (await ExternalTool.RunCheckedAsync("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", server.Endpoint + "/api/fleet/summary"], Timeout, cancellationToken: Ct)).Stdout);

            server.Kill9(); // 'other' is still connected
        }

        using var restarted = await ServerProcess.StartAsync(_data, Ct);
        var after = await StateAsync(restarted, other);
        Assert.Equal((false, "SERVER_ERROR"), (after["connected"]!.GetValue<bool>(), after["disconnectReason"]!.GetValue<string>()));
        Assert.Equal("MQTT_KEEP_ALIVE_TIMEOUT", (await StateAsync(restarted, silent))["disconnectReason"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_rule_on_presence_events_fires_when_no_client_subscribes_to_a_dollar_topic()
    {
        using var server = await ServerProcess.StartAsync(_data, Ct);
        var rule = await server.IotCallsAsync([("create_topic_rule", new
        {
            ruleName = "presence_log",
            topicRulePayload = new
            {
                sql = "SELECT clientId, eventType, disconnectReason FROM '$aws/events/presence/+/+'",
                actions = new object[] { new { republish = new { topic = "presence/log", roleArn = "r", qos = 1 } } },
            },
        })], Ct);
        Assert.True(rule[0]!["status"]!.GetValue<int>() == 200, rule[0]!.ToJsonString());

        // The only subscriber listens on an ordinary topic: the events exist for the rule alone.
        using var log = await ExternalTool.StartSubscriberAsync([.. server.Anonymous("log-reader"), "-t", "presence/log", "-q", "1"], Timeout, Ct);
        await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. server.Anonymous("visitor"), "-t", "hello", "-m", "x"], Timeout, cancellationToken: Ct);
        Assert.True(await log.WaitForLineAsync(l => l.Contains("\"visitor\"", StringComparison.Ordinal) && l.Contains("CLIENT_INITIATED_DISCONNECT", StringComparison.Ordinal), Timeout, Ct), "no disconnected event reached the rule: " + string.Join('\n', log.Lines));
        Assert.Contains(log.Lines, l => l.Contains("\"visitor\"", StringComparison.Ordinal) && l.Contains("\"connected\"", StringComparison.Ordinal));
    }

    public void Dispose()
    {
        if (Directory.Exists(_data))
        {
            Directory.Delete(_data, recursive: true);
        }
    }

    private static async Task<bool> ConnectedAsync(ServerProcess server, string thing) => (await StateAsync(server, thing))["connected"]!.GetValue<bool>();

    private static async Task<JsonNode> StateAsync(ServerProcess server, string thing) =>
        (await server.IotCallsAsync([("get_thing_connectivity_data", new { thingName = thing })], Ct))[0]!["body"]!;
}
