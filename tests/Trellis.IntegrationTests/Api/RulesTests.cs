using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary>Topic rules created with boto3 and fed by mosquitto_pub; their output read with mosquitto_sub.</summary>
[Collection(TrellisServerGroup.Name)]
public sealed class RulesTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_rule_filters_transforms_and_republishes_with_substitution_templates()
    {
        var rule = TrellisHost.Unique("heat_");
        var prefix = TrellisHost.Unique("plant");
        var created = await host.IotCallsAsync(
        [
            ("create_topic_rule", new
            {
                ruleName = rule,
                topicRulePayload = new
                {
                    sql = $"SELECT temp, topic(2) AS device, temp * 1.8 + 32 AS fahrenheit, clientid() AS sender FROM '{prefix}/+/telemetry' WHERE temp > 20",
                    actions = new object[] { new { republish = new { topic = $"{prefix}-alerts/${{topic(2)}}", roleArn = "arn:aws:iam::000000000000:role/r", qos = 1 } } },
                    awsIotSqlVersion = "2016-03-23",
                },
            }),
            ("get_topic_rule", new { ruleName = rule }),
            ("list_topic_rules", new { topic = $"{prefix}/+/telemetry" }),
        ], Ct);
        Assert.True(created[0]!["status"]!.GetValue<int>() == 200, created[0]!.ToJsonString());
        Assert.Equal($"{prefix}/+/telemetry", created[2]!["body"]!["rules"]![0]!["topicPattern"]!.GetValue<string>());
        Assert.EndsWith($":rule/{rule}", created[1]!["body"]!["ruleArn"]!.GetValue<string>(), StringComparison.Ordinal);

        var subscriber = TrellisHost.Unique("sub");
        using var alerts = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(subscriber), "-t", $"{prefix}-alerts/#", "-v", "-q", "1"]);
        await host.WaitSubscribedAsync(subscriber, alerts);
        var sender = TrellisHost.Unique("pub");
        foreach (var (device, temp) in new[] { ("cold-1", 10), ("hot-1", 25) })
        {
            var pub = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(sender), "-t", $"{prefix}/{device}/telemetry", "-m", $"{{\"temp\":{temp}}}", "-q", "1"], Timeout, cancellationToken: Ct);
            Assert.True(pub.ExitCode == 0, pub.Output);
        }

        string? line = null;
        Assert.True(await alerts.WaitForLineAsync(l => (line = l).StartsWith($"{prefix}-alerts/hot-1 ", StringComparison.Ordinal), Timeout, Ct), "no alert: " + alerts.Stderr);
        var output = JsonNode.Parse(line![(line!.IndexOf(' ', StringComparison.Ordinal) + 1)..])!;
        Assert.Equal(25, output["temp"]!.GetValue<int>());
        Assert.Equal("hot-1", output["device"]!.GetValue<string>());
        Assert.Equal(77.0, output["fahrenheit"]!.GetValue<double>());
        Assert.Equal(sender, output["sender"]!.GetValue<string>());
        Assert.False(await alerts.WaitForLineAsync(l => l.Contains("cold-1", StringComparison.Ordinal), TimeSpan.FromMilliseconds(500), Ct), "the WHERE clause let a cold reading through");

        // Disabled, the rule stops; enabled again, it works; deleted, it is gone.
        Assert.Equal(200, (await host.IotCallsAsync([("disable_topic_rule", new { ruleName = rule })], Ct))[0]!["status"]!.GetValue<int>());
        await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. host.AdminArgs(sender), "-t", $"{prefix}/hot-2/telemetry", "-m", "{\"temp\":30}", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.False(await alerts.WaitForLineAsync(l => l.Contains("hot-2", StringComparison.Ordinal), TimeSpan.FromMilliseconds(500), Ct), "a disabled rule fired");
        // Replaced, it runs its new SQL from then on (AWS's ReplaceTopicRule: the whole payload).
        var replacedSql = $"SELECT temp, 'replaced' AS version FROM '{prefix}/+/telemetry' WHERE temp > 40";
        var replaced = await host.IotCallsAsync(
        [
            ("enable_topic_rule", new { ruleName = rule }),
            ("replace_topic_rule", new
            {
                ruleName = rule,
                topicRulePayload = new { sql = replacedSql, actions = new object[] { new { republish = new { topic = $"{prefix}-alerts/${{topic(2)}}", roleArn = "arn:aws:iam::000000000000:role/r", qos = 1 } } } },
            }),
            ("get_topic_rule", new { ruleName = rule }),
        ], Ct);
        Assert.True(replaced[1]!["status"]!.GetValue<int>() == 200, replaced[1]!.ToJsonString());
        Assert.Equal(replacedSql, replaced[2]!["body"]!["rule"]!["sql"]!.GetValue<string>());
        Assert.False(replaced[2]!["body"]!["rule"]!["ruleDisabled"]!.GetValue<bool>());
        await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. host.AdminArgs(sender), "-t", $"{prefix}/hot-3/telemetry", "-m", "{\"temp\":45}", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(await alerts.WaitForLineAsync(l => l.StartsWith($"{prefix}-alerts/hot-3 ", StringComparison.Ordinal) && l.Contains("\"replaced\"", StringComparison.Ordinal), Timeout, Ct), "the replaced rule did not fire: " + alerts.Stderr);

        var end = await host.IotCallsAsync([("delete_topic_rule", new { ruleName = rule }), ("get_topic_rule", new { ruleName = rule })], Ct);
        Assert.Equal(200, end[0]!["status"]!.GetValue<int>());
        Assert.Equal(404, end[1]!["status"]!.GetValue<int>());
    }

    [Fact]
    public async Task Mistakes_in_rules_are_refused_with_their_place_and_failures_go_to_the_error_action()
    {
        static object Rule(string sql, object[] actions, object? errorAction = null) => errorAction is null
            ? new { sql, actions }
            : new { sql, actions, errorAction };
        var republish = new { republish = new { topic = "out", roleArn = "arn:aws:iam::000000000000:role/r" } };
        var name = TrellisHost.Unique("bad_");
        var refused = await host.IotCallsAsync(
        [
            ("create_topic_rule", new { ruleName = name, topicRulePayload = Rule("SELECT temp FROM 'a'\nWHERE temp >", [republish]) }),
            ("create_topic_rule", new { ruleName = name, topicRulePayload = Rule("SELECT nosuch(temp) FROM 'a'", [republish]) }),
            ("create_topic_rule", new { ruleName = name, topicRulePayload = Rule("SELECT * FROM 'a'", [new { lambda = new { functionArn = "arn:aws:lambda:us-east-1:000000000000:function:f" } }]) }),
            ("create_topic_rule", new { ruleName = name, topicRulePayload = Rule("SELECT * FROM 'a'", [new { republish = new { topic = "out/${nope(", roleArn = "r" } }]) }),
        ], Ct);
        Assert.Equal("SqlParseException", refused[0]!["error"]!.GetValue<string>());
        Assert.Contains("line 2, column 13", refused[0]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("SqlParseException", refused[1]!["error"]!.GetValue<string>());
        Assert.Contains("unknown function 'nosuch'", refused[1]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("InvalidRequestException", refused[2]!["error"]!.GetValue<string>());
        Assert.Contains("'lambda' is not supported", refused[2]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("InvalidRequestException", refused[3]!["error"]!.GetValue<string>());

        // A republish whose topic comes out invalid fails; its error action reports it; a second rule on the same topic is unaffected.
        var prefix = TrellisHost.Unique("err");
        var broken = TrellisHost.Unique("broken_");
        var healthy = TrellisHost.Unique("healthy_");
        var setup = await host.IotCallsAsync(
        [
            ("create_topic_rule", new { ruleName = broken, topicRulePayload = Rule($"SELECT * FROM '{prefix}/in'", [new { republish = new { topic = $"{prefix}/out/${{target}}", roleArn = "r" } }], new { republish = new { topic = $"{prefix}/errors", roleArn = "r" } }) }),
            ("create_topic_rule", new { ruleName = healthy, topicRulePayload = Rule($"SELECT VALUE payload FROM '{prefix}/in'", [new { republish = new { topic = $"{prefix}/copy", roleArn = "r" } }]) }),
        ], Ct);
        Assert.All(setup, r => Assert.Equal(200, r!["status"]!.GetValue<int>()));
        var subscriber = TrellisHost.Unique("sub");
        using var watch = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(subscriber), "-t", $"{prefix}/#", "-v"]);
        await host.WaitSubscribedAsync(subscriber, watch);
        await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("pub")), "-t", $"{prefix}/in", "-m", """{"target":"a/+/b","payload":{"n":1}}"""], Timeout, cancellationToken: Ct);
        string? error = null;
        Assert.True(await watch.WaitForLineAsync(l => (error = l).StartsWith($"{prefix}/errors ", StringComparison.Ordinal), Timeout, Ct), "no error report: " + watch.Stderr);
        var report = JsonNode.Parse(error![(error!.IndexOf(' ', StringComparison.Ordinal) + 1)..])!;
        Assert.Equal(broken, report["ruleName"]!.GetValue<string>());
        Assert.Equal("RepublishAction", report["failures"]![0]!["failedAction"]!.GetValue<string>());
        Assert.Contains("not a valid topic name", report["failures"]![0]!["errorMessage"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.True(await watch.WaitForLineAsync(l => l == $"{prefix}/copy {{\"n\":1}}", Timeout, Ct), "the healthy rule did not run: " + watch.Stderr);
    }

    [Fact]
    public async Task Basic_ingest_reaches_the_rule_without_fan_out_and_binary_payloads_pass_through()
    {
        var rule = TrellisHost.Unique("ingest_");
        var prefix = TrellisHost.Unique("bin");
        var created = await host.IotCallsAsync(
        [
            ("create_topic_rule", new { ruleName = rule, topicRulePayload = new { sql = $"SELECT * FROM '{prefix}/never'", actions = new object[] { new { republish = new { topic = $"{prefix}/out/${{topic()}}", roleArn = "r" } } } } }),
        ], Ct);
        Assert.Equal(200, created[0]!["status"]!.GetValue<int>());
        var subscriber = TrellisHost.Unique("sub");
        using var watch = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(subscriber), "-t", $"{prefix}/#", "-t", "$aws/rules/#", "-v"]);
        await host.WaitSubscribedAsync(subscriber, watch, filters: 2);

        // Not JSON: SELECT * passes the bytes through unchanged.
        var pub = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("pub")), "-t", $"$aws/rules/{rule}/line-3", "-m", "raw,not,json", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(pub.ExitCode == 0, pub.Output);
        Assert.True(await watch.WaitForLineAsync(l => l == $"{prefix}/out/line-3 raw,not,json", Timeout, Ct), "basic ingest did not reach the rule: " + watch.Stderr);
        Assert.False(await watch.WaitForLineAsync(l => l.StartsWith("$aws/rules/", StringComparison.Ordinal), TimeSpan.FromMilliseconds(300), Ct), "a Basic Ingest message was fanned out to subscribers");
    }

    [Fact]
    public async Task A_store_rule_writes_measures_that_the_telemetry_api_ranges_downsamples_and_reads_latest()
    {
        var rule = TrellisHost.Unique("store_");
        var prefix = TrellisHost.Unique("ts");
        var group = TrellisHost.Unique("tsgroup");
        var created = await host.IotCallsAsync(
        [
            ("create_topic_rule", new
            {
                ruleName = rule,
                topicRulePayload = new
                {
                    sql = $"SELECT temp, hum, online, label FROM '{prefix}/+/telemetry'",
                    actions = new object[]
                    {
                        new
                        {
                            timestream = new
                            {
                                roleArn = "r", databaseName = "trellis", tableName = "telemetry",
                                dimensions = new[] { new { name = "thing", value = "${topic(2)}" } },
                                timestamp = new { value = "${at}", unit = "MILLISECONDS" },
                            },
                        },
                    },
                },
            }),
            ("create_thing_group", new { thingGroupName = group }),
            ("create_thing", new { thingName = $"{prefix}-a" }),
            ("create_thing", new { thingName = $"{prefix}-b" }),
            ("add_thing_to_thing_group", new { thingGroupName = group, thingName = $"{prefix}-a" }),
            ("add_thing_to_thing_group", new { thingGroupName = group, thingName = $"{prefix}-b" }),
        ], Ct);
        Assert.All(created, r => Assert.True(r!["status"]!.GetValue<int>() == 200, r.ToJsonString()));

        // Six readings of thing a, one minute apart, and one of thing b.
        var start = DateTimeOffset.UtcNow.AddMinutes(-30).ToUnixTimeMilliseconds() / 180_000 * 180_000; // buckets are aligned to the Unix epoch
        var sender = host.AdminArgs(TrellisHost.Unique("pub"));
        foreach (var (thing, temp, at) in Enumerable.Range(0, 6).Select(i => ($"{prefix}-a", 20 + i, start + (i * 60_000))).Append(($"{prefix}-b", 99, start)))
        {
            var pub = await ExternalTool.RunAsync("mosquitto_pub", [.. sender, "-t", $"{prefix}/{thing}/telemetry", "-m", $"{{\"temp\":{temp},\"hum\":50,\"online\":true,\"label\":\"x\",\"at\":{at}}}", "-q", "1"], Timeout, cancellationToken: Ct);
            Assert.True(pub.ExitCode == 0, pub.Output);
        }

        var from = start.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var to = (start + 3_600_000).ToString(System.Globalization.CultureInfo.InvariantCulture);
        JsonNode? range = null;
        for (var attempt = 0; attempt < 50 && range?["body"]?["points"]?.AsArray().Count != 6; attempt++)
        {
            await Task.Delay(attempt == 0 ? 0 : 100, Ct);
            range = await host.SignedRequestAsync("GET", $"/api/telemetry/things/{prefix}-a/temp?from={from}&to={to}", null, Ct);
        }

        Assert.True(range?["body"]?["points"]?.AsArray().Count == 6, "points did not arrive: " + range?.ToJsonString() + string.Join("\n", host.Logs.Entries.Where(e => e.Level >= Microsoft.Extensions.Logging.LogLevel.Warning).Select(e => e.Message)));
        Assert.Equal(25, range!["body"]!["points"]![5]!["v"]!.GetValue<double>());
        Assert.Equal(start + 300_000, range["body"]!["points"]![5]!["t"]!.GetValue<long>());

        var online = await host.SignedRequestAsync("GET", $"/api/telemetry/things/{prefix}-a/online?from={from}&to={to}", null, Ct);
        Assert.Equal(1, online["body"]!["points"]![0]!["v"]!.GetValue<double>());
        var label = await host.SignedRequestAsync("GET", $"/api/telemetry/things/{prefix}-a/label?from={from}&to={to}", null, Ct);
        Assert.Empty(label["body"]!["points"]!.AsArray());

        var buckets = await host.SignedRequestAsync("GET", $"/api/telemetry/things/{prefix}-a/temp/downsample?from={from}&to={to}&bucketSeconds=180", null, Ct);
        var first = buckets["body"]!["buckets"]![0]!;
        Assert.Equal(2, buckets["body"]!["buckets"]!.AsArray().Count);
        Assert.Equal(21, first["avg"]!.GetValue<double>());
        Assert.Equal(20, first["min"]!.GetValue<double>());
        Assert.Equal(22, first["max"]!.GetValue<double>());
        Assert.Equal(3, first["count"]!.GetValue<long>());
        Assert.Equal(20, first["first"]!.GetValue<double>());
        Assert.Equal(22, first["last"]!.GetValue<double>());

        var summary = await host.SignedRequestAsync("GET", $"/api/telemetry/measures/temp/summary?from={from}&to={to}&thing={prefix}-a", null, Ct);
        Assert.Equal(22.5, summary["body"]!["avg"]!.GetValue<double>());
        Assert.Equal(6, summary["body"]!["count"]!.GetValue<long>());

        var latest = await host.SignedRequestAsync("GET", $"/api/telemetry/groups/{group}/latest/temp", null, Ct);
        var values = latest["body"]!["latest"]!.AsArray().ToDictionary(p => p!["thing"]!.GetValue<string>(), p => p!["v"]!.GetValue<double>());
        Assert.Equal(25, values[$"{prefix}-a"]);
        Assert.Equal(99, values[$"{prefix}-b"]);

        var bad = await host.SignedRequestAsync("GET", $"/api/telemetry/things/{prefix}-a/temp?from=yesterday", null, Ct);
        Assert.Equal(400, bad["status"]!.GetValue<int>());

        // The analysts' SQL endpoint: one SELECT over the view points; nothing else.
        var sql = await host.SignedRequestAsync("POST", "/api/telemetry/sql",
            new JsonObject { ["sql"] = $"SELECT thing, count(*) AS n, max(value) AS top FROM points WHERE measure = 'temp' AND thing LIKE '{prefix}-%' GROUP BY thing ORDER BY thing" }.ToJsonString(), Ct);
        Assert.True(sql["status"]!.GetValue<int>() == 200, sql.ToJsonString());
        Assert.Equal(["thing", "n", "top"], sql["body"]!["columns"]!.AsArray().Select(c => c!.GetValue<string>()));
        Assert.Equal($"[[\"{prefix}-a\",6,25],[\"{prefix}-b\",1,99]]", sql["body"]!["rows"]!.ToJsonString());
        foreach (var (statement, reason) in new[]
        {
            ("DELETE FROM points", "read-only"),
            ("SELECT * FROM read_csv('/etc/passwd')", "table functions"),
            ("SELECT getenv('HOME')", "getenv"),
            ("SELEC 1", "syntax error"),
        })
        {
            var refused = await host.SignedRequestAsync("POST", "/api/telemetry/sql", new JsonObject { ["sql"] = statement }.ToJsonString(), Ct);
            Assert.Equal(400, refused["status"]!.GetValue<int>());
            Assert.Contains(reason, refused["body"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        }

        // The CLI: a CSV of the raw points, and a Parquet export read back with DuckDB.
        var csv = await TrellisCli.RunAsync(host, ["query", $"{prefix}-a", "temp", "--from", from, "--to", to, "--output", "csv"], Ct);
        Assert.True(csv.ExitCode == 0, csv.Output);
        var csvLines = csv.Stdout.Trim().Split('\n');
        Assert.Equal("time,v", csvLines[0]);
        Assert.Equal(7, csvLines.Length);
        Assert.EndsWith(",25", csvLines[6], StringComparison.Ordinal);
        var parquet = Path.Combine(host.DataDirectory, prefix + ".parquet");
        var export = await TrellisCli.RunAsync(host, ["export", "--format", "parquet", "--out", parquet, "--from", from, "--to", to, "--measure", "temp"], Ct);
        Assert.True(export.ExitCode == 0, export.Output);
        await using var duck = new DuckDB.NET.Data.DuckDBConnection("Data Source=:memory:");
        await duck.OpenAsync(Ct);
        await using var read = duck.CreateCommand();
        read.CommandText = $"SELECT thing, count(*), max(value), min(time) FROM read_parquet('{parquet}') WHERE thing LIKE '{prefix}-%' GROUP BY thing ORDER BY thing";
        await using var rows = await read.ExecuteReaderAsync(Ct);
        Assert.True(await rows.ReadAsync(Ct));
        Assert.Equal($"{prefix}-a", rows.GetString(0));
        Assert.Equal(6, rows.GetInt64(1));
        Assert.Equal(25, rows.GetDouble(2));
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(start).UtcDateTime, rows.GetDateTime(3));
        Assert.True(await rows.ReadAsync(Ct));
        Assert.Equal($"{prefix}-b", rows.GetString(0));
        Assert.False(await rows.ReadAsync(Ct));
    }
}
