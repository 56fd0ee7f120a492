using System.Collections.Concurrent;
using System.Text;
using System.Text.Json.Nodes;
using MQTTnet;
using MQTTnet.Protocol;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Gateway;

/// <summary>
/// The gateway's store-and-forward (issue 21): leaves publish QoS 1 to the gateway's local
/// listener while the upstream server (a real <c>trellis serve</c>) is stopped for 30 s and the
/// gateway is killed with SIGKILL twice; afterwards the server's time-series store holds every
/// message a leaf had a PUBACK for exactly once, and a persistent subscriber upstream (mosquitto_sub)
/// saw each leaf's messages in the order they were published.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class GatewayStoreAndForwardTests
{
    private const int Leaves = 20;
    private const int PerLeaf = 2_500;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private const string GatewayPolicy = """
        {"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
          {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":["arn:aws:iot:*:*:topic/devices/*","arn:aws:iot:*:*:topic/$aws/things/*"]},
          {"Effect":"Allow","Action":"iot:Subscribe","Resource":"arn:aws:iot:*:*:topicfilter/$aws/things/*"}]}
        """;

    [Fact]
    public async Task Leaves_lose_nothing_and_keep_order_across_an_upstream_outage_and_two_gateway_crashes()
    {
        var root = Directory.CreateTempSubdirectory("gwsf").FullName;
        var serverData = Path.Combine(root, "server");
        var mqtts = HttpReceiver.FreePort();
        var local = HttpReceiver.FreePort();
        var listeners = new[] { "--mqtts", $"127.0.0.1:{mqtts}", "--http", $"127.0.0.1:{HttpReceiver.FreePort()}" };
        var environment = new Dictionary<string, string> { ["TRELLIS_Broker__MaxQueuedMessagesPerClient"] = "1000000" };
        var upstream = await ServerProcess.StartAsync(serverData, Ct, environment, listeners);
        var gatewayProcesses = new List<ExternalTool.Background>();
        var witnesses = new List<ExternalTool.Background>();
        try
        {
            var things = Enumerable.Range(0, Leaves).Select(i => $"sfleaf{i:D2}").ToArray();
            var setup = await upstream.IotCallsAsync([
                ("create_policy", new { policyName = "gateway", policyDocument = GatewayPolicy }),
                .. things.Select(t => ("create_thing", (object)new { thingName = t })),
                ("create_topic_rule", new
                {
                    ruleName = "sf_store",
                    topicRulePayload = new
                    {
                        sql = "SELECT n FROM 'devices/+/telemetry'",
                        actions = new object[] { new { timestream = new { roleArn = "r", databaseName = "trellis", tableName = "t", dimensions = new[] { new { name = "thing", value = "${topic(2)}" } } } } },
                    },
                }),
            ], Ct);
            Assert.All(setup, r => Assert.Equal(200, r!["status"]!.GetValue<int>()));

            var identity = Path.Combine(root, "gw-identity");
            var data = Path.Combine(root, "gw-data");
            var provision = await ExternalTool.RunAsync(TrellisCli.FileName, [.. TrellisCli.Leading, "provision", "--thing", "sf-gateway", "--out", identity, "--policy", "gateway", "--endpoint", upstream.Endpoint, "--data", serverData],
                Timeout, new Dictionary<string, string> { ["AWS_PROFILE"] = "trellis" }, Ct);
            Assert.True(provision.ExitCode == 0, provision.Output);
            var passwords = new Dictionary<string, string>();
            foreach (var thing in things)
            {
                var added = await ExternalTool.RunAsync(TrellisCli.FileName, [.. TrellisCli.Leading, "gateway", "add-leaf", "--data", data, "--thing", thing], Timeout, cancellationToken: Ct);
                Assert.True(added.ExitCode == 0, added.Output);
                passwords[thing] = added.Stdout.Trim().Split('\n')[^1];
            }

            // Private to the gateway's user: the leaves' password hashes and the queue.
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(data));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(data, "leaves.json")));

            ExternalTool.Background StartGateway()
            {
                var process = ExternalTool.StartBackground(TrellisCli.FileName, [.. TrellisCli.Leading, "gateway", "--identity", identity, "--data", data, "--mqtt", $"127.0.0.1:{local}"]);
                gatewayProcesses.Add(process);
                return process;
            }

            ExternalTool.Background StartWitness()
            {
                var witness = ExternalTool.StartBackground("mosquitto_sub", [.. upstream.Anonymous("sf-witness"), "-c", "-q", "1", "-t", "devices/+/telemetry", "-v"]);
                witnesses.Add(witness);
                return witness;
            }

            var witness = StartWitness();
            Assert.True(await Eventually.TrueAsync(async () =>
            {
                var probe = await ExternalTool.RunAsync("mosquitto_pub", [.. upstream.Anonymous("sf-probe"), "-t", "devices/probe/telemetry", "-m", "{}"], Timeout, cancellationToken: Ct);
                return probe.ExitCode == 0 && witness.Lines.Count > 0;
            }, Timeout, Ct), "the witness did not subscribe: " + witness.Stderr);
            var gateway = StartGateway();
            Assert.True(await gateway.WaitForLineAsync(l => l.Contains("Connected upstream", StringComparison.Ordinal), Timeout, Ct), string.Join('\n', gateway.Lines) + gateway.Stderr);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(data, "queue.db")));

            var acked = things.ToDictionary(t => t, _ => new ConcurrentBag<int>());
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
            var leaves = things.Select(t => RunLeafAsync(t, passwords[t], local, acked[t], stop.Token)).ToArray();

            // The first crash while upstream takes the gateway's messages (some forwarded and not yet
            // removed from the queue: they go again, and upstream must recognise them).
            await WaitForAckedAsync(acked, 2_000);
            gateway.Dispose(); // SIGKILL
            gateway = StartGateway();
            Assert.True(await gateway.WaitForLineAsync(l => l.Contains("Connected upstream", StringComparison.Ordinal), Timeout, Ct), gateway.Stderr);
            await WaitForAckedAsync(acked, 5_000);

            // The outage: upstream stops for 30 s while the leaves go on.
            Assert.Equal(0, await upstream.TerminateAsync(Ct));
            witness.Dispose();
            await Task.Delay(TimeSpan.FromSeconds(30), Ct);
            var before = gateway.Lines.Count;
            upstream = await ServerProcess.StartAsync(serverData, Ct, environment, listeners);
            witness = StartWitness();

            // The second crash while the backlog drains.
            Assert.True(await Eventually.TrueAsync(() => gateway.Lines.Skip(before).Any(l => l.Contains("Connected upstream", StringComparison.Ordinal)), Timeout, Ct), gateway.Stderr);
            await Task.Delay(500, Ct);
            gateway.Dispose();
            gateway = StartGateway();
            Assert.True(await gateway.WaitForLineAsync(l => l.Contains("Connected upstream", StringComparison.Ordinal), Timeout, Ct), gateway.Stderr);

            await Task.WhenAll(leaves);
            var total = acked.Values.Sum(b => b.Count);
            Assert.True(total >= Leaves * PerLeaf - 5 * Leaves, $"only {total} of {Leaves * PerLeaf} messages were acknowledged");

            // Every acknowledged message is in the store exactly once.
            var expected = acked.SelectMany(kv => kv.Value.Select(n => (kv.Key, n))).ToHashSet();
            Dictionary<(string, int), int> stored = [];
            var complete = await Eventually.TrueAsync(async () =>
            {
                stored = await StoredAsync(upstream);
                return expected.All(stored.ContainsKey);
            }, TimeSpan.FromSeconds(120), Ct);
            Assert.True(complete, $"{expected.Count(e => !stored.ContainsKey(e))} acknowledged messages are missing upstream, e.g. {string.Join(", ", expected.Where(e => !stored.ContainsKey(e)).Take(5))}; gateway: {string.Join('\n', gateway.Lines.TakeLast(20))}");
            var repeated = stored.Where(kv => kv.Value > 1).ToList();
            Assert.True(repeated.Count == 0, $"{repeated.Count} messages were stored more than once, e.g. {string.Join(", ", repeated.Take(5))}");

            // In order per leaf, as a subscriber upstream saw them (first sight of each message).
            Assert.True(await Eventually.TrueAsync(() => witnesses.Sum(w => w.Lines.Count(l => l.StartsWith("devices/sfleaf", StringComparison.Ordinal))) >= stored.Count, Timeout, Ct), "the witness did not receive everything");
            foreach (var thing in things)
            {
                var seen = new HashSet<int>();
                var order = witnesses.SelectMany(w => w.Lines)
                    .Where(l => l.StartsWith($"devices/{thing}/telemetry ", StringComparison.Ordinal))
                    .Select(l => JsonNode.Parse(l[(l.IndexOf(' ', StringComparison.Ordinal) + 1)..])!["n"]!.GetValue<int>())
                    .Where(seen.Add)
                    .ToList();
                Assert.True(order.SequenceEqual(order.Order()), $"{thing}'s messages arrived out of order: {string.Join(',', order.Zip(order.Skip(1)).Where(p => p.Second < p.First).Take(5))}");
                Assert.Superset(acked[thing].ToHashSet(), seen);
            }

            Assert.Contains(gatewayProcesses.SelectMany(g => g.Lines), l => l.Contains("is not reachable", StringComparison.Ordinal));

            // The crashes made the gateway send messages again that upstream had already taken.
            using var http = new HttpClient();
            var metrics = await http.GetStringAsync($"{upstream.Endpoint}/metrics", Ct);
            Assert.True(PrometheusText.Value(metrics, "trellis_broker_publishes_repeated_total") > 0, "no repeated publish was recognised: the crashes did not exercise the numbering");
        }
        finally
        {
            foreach (var process in gatewayProcesses.Concat(witnesses))
            {
                process.Dispose();
            }

            upstream.Dispose();
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>
    /// One leaf: publishes n = 1…PerLeaf at QoS 1, paced, recording each n that got its PUBACK. A
    /// publish that fails (the gateway died) is not sent again: it may or may not have been kept,
    /// and only acknowledged messages are promised. The leaf reconnects and goes on.
    /// </summary>
    private static async Task RunLeafAsync(string thing, string password, int port, ConcurrentBag<int> acked, CancellationToken ct)
    {
        using var client = new MqttClientFactory().CreateMqttClient();
        var options = new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", port).WithClientId(thing).WithCredentials(thing, password)
            .WithTimeout(TimeSpan.FromSeconds(5)).Build();
        for (var n = 1; n <= PerLeaf; n++)
        {
            while (!client.IsConnected)
            {
                try
                {
                    await client.ConnectAsync(options, ct);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    await Task.Delay(200, ct);
                }
            }

            try
            {
                var message = new MqttApplicationMessageBuilder().WithTopic($"devices/{thing}/telemetry")
                    .WithPayload(Encoding.UTF8.GetBytes($"{{\"n\":{n}}}")).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build();
                var result = await client.PublishAsync(message, ct);
                if (result.IsSuccess)
                {
                    acked.Add(n);
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The gateway went away with this message unacknowledged.
            }

            await Task.Delay(15, ct);
        }

        await client.DisconnectAsync(cancellationToken: ct);
    }

    private static async Task WaitForAckedAsync(Dictionary<string, ConcurrentBag<int>> acked, int count) =>
        Assert.True(await Eventually.TrueAsync(() => acked.Values.Sum(b => b.Count) >= count, Timeout, Ct), "the leaves are not being acknowledged");

    private static async Task<Dictionary<(string, int), int>> StoredAsync(ServerProcess server)
    {
        var body = JsonSerializerBody("SELECT thing, CAST(value AS INTEGER) AS n, count(*) AS c FROM points WHERE measure = 'n' AND thing LIKE 'sfleaf%' GROUP BY ALL");
        var answer = await server.SignedAsync("POST", "/api/telemetry/sql", body, Ct);
        var counts = new Dictionary<(string, int), int>();
        foreach (var row in answer["body"]?["rows"]?.AsArray() ?? [])
        {
            counts[(row![0]!.GetValue<string>(), row[1]!.GetValue<int>())] = row[2]!.GetValue<int>();
        }

        return counts;
    }

    private static string JsonSerializerBody(string sql) =>
        new JsonObject { ["sql"] = sql, ["maxRows"] = 100_000 }.ToJsonString();
}
