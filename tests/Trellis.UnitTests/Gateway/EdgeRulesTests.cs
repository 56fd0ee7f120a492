using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using Trellis.Gateway.Forwarding;
using Trellis.Gateway.Rules;

namespace Trellis.UnitTests.Gateway;

public sealed class EdgeRulesTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("edgerules").FullName;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private EdgeRules Rules(string json)
    {
        var path = Path.Combine(_folder, "rules.json");
        File.WriteAllText(path, json);
        return EdgeRules.Load(path, NullLogger.Instance);
    }

    private static byte[] Json(string s) => Encoding.UTF8.GetBytes(s);

    [Fact]
    public async Task A_rule_per_message_filters_and_reshapes_and_unmatched_messages_go_up_raw()
    {
        var rules = Rules("""
            {"rules": [{"name": "hot", "sql": "SELECT temperature AS t, topic(2) AS leaf FROM 'devices/+/telemetry' WHERE temperature > 30", "topic": "alerts/${topic(2)}"}]}
            """);
        using var store = new ForwardStore(Path.Combine(_folder, "q.db"));
        await rules.TakeAsync(store, "devices/a/telemetry", Json("""{"temperature":35}"""), "a", 1, Ct);
        await rules.TakeAsync(store, "devices/a/telemetry", Json("""{"temperature":20}"""), "a", 2, Ct);
        await rules.TakeAsync(store, "devices/a/status", Json("""{"ok":true}"""), "a", 3, Ct);
        var queued = store.ReadAfter(0, 10);
        Assert.Equal(["alerts/a", "devices/a/status"], queued.Select(m => m.Topic));
        Assert.Equal("""{"t":35,"leaf":"a"}""", Encoding.UTF8.GetString(queued[0].Payload));
    }

    [Fact]
    public async Task A_window_rule_sends_one_aggregate_per_window_and_its_state_survives_a_reopen()
    {
        var json = """
            {"rules": [{"name": "avg", "sql": "SELECT temperature, vibration FROM 'devices/+/telemetry'", "topic": "devices/${topic(2)}/summary",
                        "windowSeconds": 60, "functions": ["avg", "min", "max", "count"]}]}
            """;
        var path = Path.Combine(_folder, "q.db");
        var start = 1_700_000_040_000L; // a multiple of 60 s, long past: the window is due at once
        using (var store = new ForwardStore(path))
        {
            var rules = Rules(json);
            for (var i = 0; i < 50; i++)
            {
                await rules.TakeAsync(store, "devices/m/telemetry", Json($$"""{"temperature":{{i}},"vibration":1}"""), "m", start + i, Ct);
            }

            Assert.Equal(0, store.Count);
            Assert.Single(store.WindowKeys());
        }

        using (var store = new ForwardStore(path))
        {
            var rules = Rules(json);
            for (var i = 50; i < 100; i++)
            {
                await rules.TakeAsync(store, "devices/m/telemetry", Json($$"""{"temperature":{{i}},"vibration":3}"""), "m", start + i, Ct);
            }

            using var run = CancellationTokenSource.CreateLinkedTokenSource(Ct);
            var closing = rules.RunAsync(store, run.Token);
            Assert.True(SpinWait.SpinUntil(() => store.Count == 1, TimeSpan.FromSeconds(10)));
            await run.CancelAsync();
            await closing;
            var summary = store.ReadAfter(0, 10).Single();
            Assert.Equal("devices/m/summary", summary.Topic);
            var body = JsonNode.Parse(summary.Payload)!;
            Assert.Equal(100, body["count"]!.GetValue<long>());
            Assert.Equal(49.5, body["temperature_avg"]!.GetValue<double>());
            Assert.Equal(0, body["temperature_min"]!.GetValue<double>());
            Assert.Equal(99, body["temperature_max"]!.GetValue<double>());
            Assert.Equal(2, body["vibration_avg"]!.GetValue<double>());
            Assert.Equal(start, body["windowStart"]!.GetValue<long>());
            Assert.Equal(start + 60_000, body["windowEnd"]!.GetValue<long>());
            Assert.Empty(store.WindowKeys());
        }
    }

    [Fact]
    public async Task KeepRaw_sends_the_raw_message_as_well()
    {
        var rules = Rules("""{"rules": [{"name": "copy", "sql": "SELECT * FROM 'a/#'", "topic": "b", "keepRaw": true}]}""");
        using var store = new ForwardStore(Path.Combine(_folder, "q.db"));
        await rules.TakeAsync(store, "a/1", Json("{\"x\":1}"), "l", 1, Ct);
        Assert.Equal(["b", "a/1"], store.ReadAfter(0, 10).Select(m => m.Topic));
    }

    [Theory]
    [InlineData("""{"rules": [{"name": "r", "sql": "SELECT FROM 'a'"}]}""", "rule r:")]
    [InlineData("""{"rules": [{"name": "r", "sql": "SELECT * FROM 'a'", "functions": ["median"]}]}""", "function \"median\"")]
    [InlineData("""{"rules": [{"name": "r", "sql": "SELECT * FROM 'a'"}, {"name": "r", "sql": "SELECT * FROM 'b'"}]}""", "used twice")]
    [InlineData("""{"rules": [{"sql": "SELECT * FROM 'a'"}]}""", "no \"name\"")]
    [InlineData("{\"rules\": [\n{\"name\": }]}", "line 2")]
    public void A_bad_rules_file_is_refused_naming_the_file_and_the_rule(string json, string expected)
    {
        var e = Assert.Throws<EdgeRulesException>(() => Rules(json));
        Assert.Contains("rules.json", e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }
}
