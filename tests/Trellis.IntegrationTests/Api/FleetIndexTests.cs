using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary>
/// Fleet indexing through boto3: the configuration, SearchIndex in AWS's query syntax over the
/// registry, classic and named shadows and connectivity (a mosquitto client connects), the four
/// aggregations, pagination, AWS's refusals, a rebuild after kill -9, and dynamic thing groups
/// whose members follow the index into a CONTINUOUS job.
/// </summary>
public sealed class FleetIndexTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly string _data = Path.Combine(Path.GetTempPath(), "trellis-fleet-" + Guid.NewGuid().ToString("N")[..8]);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static object Indexing(string mode = "REGISTRY_AND_SHADOW") => new
    {
        thingIndexingConfiguration = new
        {
            thingIndexingMode = mode,
            thingConnectivityIndexingMode = "STATUS",
            namedShadowIndexingMode = "ON",
            filter = new { namedShadowNames = new[] { "config" } },
        },
    };

    [Fact]
    public async Task Search_and_aggregations_follow_the_registry_shadows_and_connectivity_and_survive_a_crash()
    {
        using (var server = await ServerProcess.StartAsync(_data, Ct))
        {
            var off = await server.IotCallsAsync([("search_index", new { queryString = "thingName:*" })], Ct);
            Assert.Equal((404, "ResourceNotFoundException"), (off[0]!["status"]!.GetValue<int>(), off[0]!["error"]!.GetValue<string>()));

            var calls = new List<(string, object)> { ("update_indexing_configuration", Indexing()), ("create_thing_group", new { thingGroupName = "north" }) };
            for (var i = 0; i < 12; i++)
            {
                calls.Add(("create_thing", new { thingName = $"meter-{i:00}", attributePayload = new { attributes = new { model = i % 3 == 0 ? "Legacy" : "m2", fw = i.ToString(System.Globalization.CultureInfo.InvariantCulture) } } }));
            }

            calls.Add(("add_thing_to_thing_group", new { thingGroupName = "north", thingName = "meter-04" }));
            calls.Add(("data:update_thing_shadow", new { thingName = "meter-05", payload = new { state = new { reported = new { temp = 21.5, battery = new { level = 80 } }, desired = new { temp = 19 } } } }));
            calls.Add(("data:update_thing_shadow", new { thingName = "meter-06", payload = new { state = new { reported = new { temp = 17 } } } }));
            calls.Add(("data:update_thing_shadow", new { thingName = "meter-07", shadowName = "config", payload = new { state = new { reported = new { mode = "Eco" } } } }));
            calls.Add(("data:update_thing_shadow", new { thingName = "meter-08", shadowName = "not-indexed", payload = new { state = new { reported = new { mode = "Eco" } } } }));
            calls.Add(("get_indexing_configuration", new { }));
            var setup = await server.IotCallsAsync([.. calls], Ct);
            Assert.All(setup, r => Assert.True(r!["status"]!.GetValue<int>() == 200, r.ToJsonString()));
            var configuration = setup[^1]!["body"]!["thingIndexingConfiguration"]!;
            Assert.Equal("REGISTRY_AND_SHADOW", configuration["thingIndexingMode"]!.GetValue<string>());
            Assert.Contains(configuration["managedFields"]!.AsArray(), f => f!["name"]!.GetValue<string>() == "connectivity.connected");

            // A device connects: its connectivity reaches the index.
            using var device = ExternalTool.StartBackground("mosquitto_sub", [.. server.Anonymous("meter-01"), "-t", "meters/1"]);
            var expected = new Dictionary<string, string[]>
            {
                ["thingName:meter-0*"] = ["meter-00", "meter-01", "meter-02", "meter-03", "meter-04", "meter-05", "meter-06", "meter-07", "meter-08", "meter-09"],
                ["attributes.model:legacy"] = ["meter-00", "meter-03", "meter-06", "meter-09"],
                ["attributes.fw>9"] = ["meter-10", "meter-11"],
                ["attributes.fw:{2 TO 4]"] = ["meter-03", "meter-04"],
                ["attributes.fw:[10 TO *]"] = ["meter-10", "meter-11"],
                ["NOT attributes.model:m2 AND attributes.fw<4"] = ["meter-00", "meter-03"],
                ["thingName:(meter-1* AND -meter-11)"] = ["meter-10"],
                ["attributes.model:legacy OR thingGroupNames:north"] = ["meter-00", "meter-03", "meter-04", "meter-06", "meter-09"],
                ["thingName:*-1?"] = ["meter-10", "meter-11"],
                ["shadow.reported.temp>=20"] = ["meter-05"],
                ["shadow.reported.battery.level:80"] = ["meter-05"],
                ["shadow.hasDelta:true"] = ["meter-05"],
                ["shadow.reported.temp:* AND NOT shadow.hasDelta:true"] = ["meter-06"],
                ["shadow.name.config.reported.mode:eco"] = ["meter-07"],
                ["shadow.name.not-indexed.reported.mode:eco"] = [],
                ["eco"] = ["meter-07"],
                ["connectivity.connected:true"] = ["meter-01"],
            };
            Assert.True(await Eventually.TrueAsync(async () => (await SearchAsync(server, "connectivity.connected:true")).SequenceEqual(["meter-01"]), Timeout, Ct), "meter-01's connection never reached the index");
            var results = await server.IotCallsAsync([.. expected.Keys.Select(q => ("search_index", (object)new { queryString = q }))], Ct);
            foreach (var (query, result) in expected.Keys.Zip(results))
            {
                Assert.True(result!["status"]!.GetValue<int>() == 200, query + ": " + result.ToJsonString());
                Assert.Equal(query + " -> " + string.Join(",", expected[query]), query + " -> " + string.Join(",", Names(result)));
            }

            var found = results[Array.IndexOf([.. expected.Keys], "shadow.reported.battery.level:80")]!["body"]!["things"]![0]!;
            var shadow = JsonNode.Parse(found["shadow"]!.GetValue<string>())!;
            Assert.Equal((21.5, 19, true), (shadow["reported"]!["temp"]!.GetValue<double>(), shadow["desired"]!["temp"]!.GetValue<int>(), shadow["hasDelta"]!.GetValue<bool>()));
            Assert.Equal("m2", found["attributes"]!["model"]!.GetValue<string>());
            Assert.False(found["connectivity"]!["connected"]!.GetValue<bool>());

            var aggregations = await server.IotCallsAsync([
                ("get_statistics", new { queryString = "thingName:meter-*", aggregationField = "attributes.fw" }),
                ("get_statistics", new { queryString = "attributes.model:legacy" }),
                ("get_cardinality", new { queryString = "*", aggregationField = "attributes.model" }),
                ("get_percentiles", new { queryString = "*", aggregationField = "attributes.fw", percents = new[] { 50.0, 90.0 } }),
                ("get_buckets_aggregation", new { queryString = "*", aggregationField = "attributes.model", bucketsAggregationType = new { termsAggregation = new { maxBuckets = 5 } } }),
                ("describe_index", new { indexName = "AWS_Things" }),
                ("list_indices", new { }),
            ], Ct);
            var statistics = aggregations[0]!["body"]!["statistics"]!;
            Assert.Equal((12, 5.5, 66.0, 0.0, 11.0), (statistics["count"]!.GetValue<int>(), statistics["average"]!.GetValue<double>(), statistics["sum"]!.GetValue<double>(), statistics["minimum"]!.GetValue<double>(), statistics["maximum"]!.GetValue<double>()));
            Assert.Equal(506.0, statistics["sumOfSquares"]!.GetValue<double>());
            Assert.Equal(4, aggregations[1]!["body"]!["statistics"]!["count"]!.GetValue<int>());
            Assert.Equal(2, aggregations[2]!["body"]!["cardinality"]!.GetValue<int>());
            var percentiles = aggregations[3]!["body"]!["percentiles"]!.AsArray().Select(p => (p!["percent"]!.GetValue<double>(), p["value"]!.GetValue<double>())).ToList();
            Assert.Equal([(50.0, 5.5), (90.0, 9.9)], percentiles.Select(p => (p.Item1, Math.Round(p.Item2, 6))).ToList());
            var buckets = aggregations[4]!["body"]!;
            Assert.Equal(12, buckets["totalCount"]!.GetValue<int>());
            Assert.Equal([("m2", 8), ("Legacy", 4)], buckets["buckets"]!.AsArray().Select(b => (b!["keyValue"]!.GetValue<string>(), b["count"]!.GetValue<int>())).ToList());
            Assert.Equal(("ACTIVE", "REGISTRY_AND_SHADOW_AND_CONNECTIVITY_STATUS"), (aggregations[5]!["body"]!["indexStatus"]!.GetValue<string>(), aggregations[5]!["body"]!["schema"]!.GetValue<string>()));
            Assert.Equal("AWS_Things", aggregations[6]!["body"]!["indexNames"]![0]!.GetValue<string>());

            // Pages of 5, in name order, each thing once.
            var names = new List<string>();
            string? token = null;
            do
            {
                var page = (await server.IotCallsAsync([("search_index", token is null ? new { queryString = "thingName:meter-*", maxResults = 5 } : (object)new { queryString = "thingName:meter-*", maxResults = 5, nextToken = token })], Ct))[0]!["body"]!;
                names.AddRange(Names(page));
                token = page["nextToken"]?.GetValue<string>();
            }
            while (token is not null && names.Count < 100);
            Assert.Equal(Enumerable.Range(0, 12).Select(i => $"meter-{i:00}"), names);

            // Refusals: the position of a syntax error, an aggregation on text, an unknown index.
            var refused = await server.IotCallsAsync([
                ("search_index", new { queryString = "attributes.fw:[1 TO" }),
                ("search_index", new { queryString = "(thingName:a OR thingName:b" }),
                ("search_index", new { queryString = "thingName:a AND" }),
                ("search_index", new { queryString = "thingName:a@b" }),
                ("get_percentiles", new { queryString = "*", aggregationField = "attributes.model" }),
                ("search_index", new { indexName = "AWS_ThingGroups", queryString = "*" }),
            ], Ct);
            Assert.Equal(("InvalidQueryException", 400), (refused[0]!["error"]!.GetValue<string>(), refused[0]!["status"]!.GetValue<int>()));
            Assert.Contains("position 20", refused[0]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
            Assert.Contains("')'", refused[1]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
            Assert.Equal("InvalidQueryException", refused[2]!["error"]!.GetValue<string>());
            Assert.Contains("'@'", refused[3]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
            Assert.Equal("InvalidAggregationException", refused[4]!["error"]!.GetValue<string>());
            Assert.Equal(404, refused[5]!["status"]!.GetValue<int>());

            // Changes reach the index: a deleted thing goes, a changed attribute moves.
            await server.IotCallsAsync([("delete_thing", new { thingName = "meter-00" }), ("update_thing", new { thingName = "meter-02", attributePayload = new { attributes = new { model = "legacy" }, merge = true } })], Ct);
            Assert.True(await Eventually.TrueAsync(async () => (await SearchAsync(server, "attributes.model:legacy")).SequenceEqual(["meter-02", "meter-03", "meter-06", "meter-09"]), Timeout, Ct));
            server.Kill9();
        }

        // After a crash the index is rebuilt from the stores; the device that was online is offline.
        using var restarted = await ServerProcess.StartAsync(_data, Ct);
        Assert.True(await Eventually.TrueAsync(async () => (await SearchAsync(restarted, "attributes.model:legacy")).SequenceEqual(["meter-02", "meter-03", "meter-06", "meter-09"]), Timeout, Ct));
        Assert.Equal(["meter-05"], await SearchAsync(restarted, "shadow.reported.temp>20"));
        Assert.Equal(["meter-01"], await SearchAsync(restarted, "connectivity.disconnectReason:server_error"));
    }

    [Fact]
    public async Task Dynamic_groups_follow_the_index_into_a_continuous_job_and_refuse_what_AWS_refuses()
    {
        using var server = await ServerProcess.StartAsync(_data, Ct);
        var refusedEarly = await server.IotCallsAsync([("create_dynamic_thing_group", new { thingGroupName = "hot", queryString = "shadow.reported.temp>30" })], Ct);
        Assert.Equal("InvalidRequestException", refusedEarly[0]!["error"]!.GetValue<string>());

        var setup = await server.IotCallsAsync([
            ("update_indexing_configuration", Indexing()),
            ("create_thing", new { thingName = "boiler-1" }),
            ("create_thing", new { thingName = "boiler-2" }),
            ("create_thing", new { thingName = "boiler-3" }),
            ("data:update_thing_shadow", new { thingName = "boiler-1", payload = new { state = new { reported = new { temp = 45 } } } }),
            ("data:update_thing_shadow", new { thingName = "boiler-2", payload = new { state = new { reported = new { temp = 20 } } } }),
        ], Ct);
        Assert.All(setup, r => Assert.True(r!["status"]!.GetValue<int>() == 200, r.ToJsonString()));
        Assert.True(await Eventually.TrueAsync(async () => (await SearchAsync(server, "shadow.reported.temp:*")).Count == 2, Timeout, Ct));

        var created = await server.IotCallsAsync([
            ("create_dynamic_thing_group", new { thingGroupName = "hot", queryString = "shadow.reported.temp>30", thingGroupProperties = new { thingGroupDescription = "boilers running hot" } }),
            ("describe_thing_group", new { thingGroupName = "hot" }),
            ("list_things_in_thing_group", new { thingGroupName = "hot" }),
            ("create_job", new { jobId = "cool-down", targets = new[] { "arn:aws:iot:us-east-1:000000000000:thinggroup/hot" }, document = """{"operation":"cool"}""", targetSelection = "CONTINUOUS" }),
            ("add_thing_to_thing_group", new { thingGroupName = "hot", thingName = "boiler-3" }),
            ("create_dynamic_thing_group", new { thingGroupName = "bad", queryString = "shadow.reported.temp>" }),
            ("create_dynamic_thing_group", new { thingGroupName = "loop", queryString = "thingGroupNames:hot" }),
            ("update_indexing_configuration", new { thingIndexingConfiguration = new { thingIndexingMode = "OFF" } }),
        ], Ct);
        Assert.True(created[0]!["status"]!.GetValue<int>() == 200, created[0]!.ToJsonString());
        Assert.Equal("shadow.reported.temp>30", created[0]!["body"]!["queryString"]!.GetValue<string>());
        var described = created[1]!["body"]!;
        Assert.Equal(("shadow.reported.temp>30", "ACTIVE", "AWS_Things"), (described["queryString"]!.GetValue<string>(), described["status"]!.GetValue<string>(), described["indexName"]!.GetValue<string>()));
        Assert.Equal(["boiler-1"], created[2]!["body"]!["things"]!.AsArray().Select(t => t!.GetValue<string>()));
        Assert.True(created[3]!["status"]!.GetValue<int>() == 200, created[3]!.ToJsonString());
        Assert.Equal("InvalidRequestException", created[4]!["error"]!.GetValue<string>());
        Assert.Equal("InvalidQueryException", created[5]!["error"]!.GetValue<string>());
        Assert.Equal("InvalidQueryException", created[6]!["error"]!.GetValue<string>());
        Assert.Equal("InvalidRequestException", created[7]!["error"]!.GetValue<string>());

        // boiler-3 heats up and boiler-1 cools: membership follows, and the job reaches the newcomer.
        await server.IotCallsAsync([
            ("data:update_thing_shadow", new { thingName = "boiler-3", payload = new { state = new { reported = new { temp = 80 } } } }),
            ("data:update_thing_shadow", new { thingName = "boiler-1", payload = new { state = new { reported = new { temp = 25 } } } }),
        ], Ct);
        Assert.True(await Eventually.TrueAsync(async () => Members(await server.IotCallsAsync([("list_things_in_thing_group", new { thingGroupName = "hot" })], Ct)).SequenceEqual(["boiler-3"]), Timeout, Ct));
        Assert.True(await Eventually.TrueAsync(async () =>
        {
            var executions = await server.IotCallsAsync([("list_job_executions_for_thing", new { thingName = "boiler-3" })], Ct);
            return executions[0]!["body"]!["executionSummaries"]!.AsArray().Any(e => e!["jobId"]!.GetValue<string>() == "cool-down");
        }, Timeout, Ct), "the CONTINUOUS job did not reach the thing that joined the dynamic group");
        Assert.Equal(["boiler-3"], await SearchAsync(server, "thingGroupNames:hot"));

        // The same through the trellis command: search, statistics, a dynamic group, the configuration.
        var search = await CliAsync(server, ["fleet", "search", "thingGroupNames:hot", "--output", "json"]);
        Assert.True(search.ExitCode == 0, search.Output);
        Assert.Equal(["boiler-3"], Names(JsonNode.Parse(search.Stdout)!));
        var stats = await CliAsync(server, ["fleet", "stats", "shadow.reported.temp:*", "--field", "shadow.reported.temp", "--output", "json"]);
        Assert.True(stats.ExitCode == 0, stats.Output);
        var statistics = JsonNode.Parse(stats.Stdout)!["statistics"]!;
        Assert.Equal((3, 80.0), (statistics["count"]!.GetValue<int>(), statistics["maximum"]!.GetValue<double>()));
        Assert.Equal(0, (await CliAsync(server, ["groups", "create-dynamic", "cold", "--query", "shadow.reported.temp<22"])).ExitCode);
        Assert.True(await Eventually.TrueAsync(async () => (await CliAsync(server, ["groups", "things", "cold"])).Stdout.Trim() == "boiler-2", Timeout, Ct));
        var bad = await CliAsync(server, ["fleet", "search", "shadow.reported.temp:[1 TO"]);
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("InvalidQueryException", bad.Stderr, StringComparison.Ordinal);
        Assert.Contains("REGISTRY_AND_SHADOW", (await CliAsync(server, ["fleet", "indexing", "--output", "json"])).Stdout, StringComparison.Ordinal);
        Assert.Equal(0, (await CliAsync(server, ["groups", "delete", "cold"])).ExitCode);

        // A new query rebuilds the membership; deleting the group lets indexing be turned off.
        var changed = await server.IotCallsAsync([
            ("update_dynamic_thing_group", new { thingGroupName = "hot", thingGroupProperties = new { thingGroupDescription = "warm" }, queryString = "shadow.reported.temp>=20" }),
            ("list_things_in_thing_group", new { thingGroupName = "hot" }),
            ("delete_dynamic_thing_group", new { thingGroupName = "hot" }),
            ("update_indexing_configuration", new { thingIndexingConfiguration = new { thingIndexingMode = "OFF" } }),
            ("search_index", new { queryString = "*" }),
        ], Ct);
        Assert.Equal(2, changed[0]!["body"]!["version"]!.GetValue<int>());
        Assert.Equal(["boiler-1", "boiler-2", "boiler-3"], Members(changed[1..2]));
        Assert.Equal([200, 200, 404], changed[2..].Select(r => r!["status"]!.GetValue<int>()));
    }

    [Fact]
    public async Task Fleet_metrics_write_their_values_to_the_time_series_store_and_follow_updates()
    {
        using var server = await ServerProcess.StartAsync(_data, Ct);
        var setup = await server.IotCallsAsync([
            ("create_fleet_metric", new { metricName = "too-early", queryString = "*", aggregationType = new { name = "Statistics" }, period = 60, aggregationField = "shadow.reported.temp" }),
            ("update_indexing_configuration", Indexing()),
            ("create_thing", new { thingName = "tank-1", attributePayload = new { attributes = new { site = "north" } } }),
            ("create_thing", new { thingName = "tank-2", attributePayload = new { attributes = new { site = "north" } } }),
            ("create_thing", new { thingName = "tank-3", attributePayload = new { attributes = new { site = "south" } } }),
            ("data:update_thing_shadow", new { thingName = "tank-1", payload = new { state = new { reported = new { level = 10 } } } }),
            ("data:update_thing_shadow", new { thingName = "tank-2", payload = new { state = new { reported = new { level = 30 } } } }),
            ("data:update_thing_shadow", new { thingName = "tank-3", payload = new { state = new { reported = new { level = 90 } } } }),
        ], Ct);
        Assert.Equal("InvalidRequestException", setup[0]!["error"]!.GetValue<string>());
        Assert.All(setup[1..], r => Assert.True(r!["status"]!.GetValue<int>() == 200, r.ToJsonString()));
        Assert.True(await Eventually.TrueAsync(async () => (await SearchAsync(server, "shadow.reported.level:*")).Count == 3, Timeout, Ct));

        var created = await server.IotCallsAsync([
            ("create_fleet_metric", new { metricName = "north-level", queryString = "attributes.site:north", aggregationType = new { name = "Statistics", values = new[] { "count", "average", "maximum" } }, period = 60, aggregationField = "shadow.reported.level", unit = "Percent" }),
            ("create_fleet_metric", new { metricName = "level-p", queryString = "*", aggregationType = new { name = "Percentiles", values = new[] { "50" } }, period = 300, aggregationField = "shadow.reported.level" }),
            ("create_fleet_metric", new { metricName = "sites", queryString = "*", aggregationType = new { name = "Cardinality" }, period = 60, aggregationField = "attributes.site" }),
            ("create_fleet_metric", new { metricName = "north-level", queryString = "*", aggregationType = new { name = "Cardinality" }, period = 60, aggregationField = "attributes.site" }),
            ("create_fleet_metric", new { metricName = "odd-period", queryString = "*", aggregationType = new { name = "Cardinality" }, period = 90, aggregationField = "attributes.site" }),
            ("create_fleet_metric", new { metricName = "bad-query", queryString = "attributes.site:(", aggregationType = new { name = "Cardinality" }, period = 60, aggregationField = "attributes.site" }),
            ("create_fleet_metric", new { metricName = "bad-value", queryString = "*", aggregationType = new { name = "Statistics", values = new[] { "median" } }, period = 60, aggregationField = "attributes.site" }),
            ("describe_fleet_metric", new { metricName = "north-level" }),
            ("list_fleet_metrics", new { }),
        ], Ct);
        Assert.All(created[..3], r => Assert.True(r!["status"]!.GetValue<int>() == 200, r.ToJsonString()));
        Assert.Equal("arn:aws:iot:us-east-1:000000000000:fleetmetric/north-level", created[0]!["body"]!["metricArn"]!.GetValue<string>());
        Assert.Equal(
            ["ResourceAlreadyExistsException", "InvalidRequestException", "InvalidQueryException", "InvalidAggregationException"],
            created[3..7].Select(r => r!["error"]!.GetValue<string>()));
        var described = created[7]!["body"]!;
        Assert.Equal(("Statistics", 60, "Percent", 1L), (described["aggregationType"]!["name"]!.GetValue<string>(), described["period"]!.GetValue<int>(), described["unit"]!.GetValue<string>(), described["version"]!.GetValue<long>()));
        Assert.Equal(["level-p", "north-level", "sites"], created[8]!["body"]!["fleetMetrics"]!.AsArray().Select(m => m!["metricName"]!.GetValue<string>()));

        // The first values are computed at once and land in the time-series store.
        Assert.True(await Eventually.TrueAsync(async () => await LatestAsync(server, "north-level", "average") == 20, Timeout, Ct), "no average for north-level");
        Assert.Equal(30, await LatestAsync(server, "north-level", "maximum"));
        Assert.Equal(2, await LatestAsync(server, "north-level", "count"));
        Assert.Null(await LatestAsync(server, "north-level", "sum"));
        Assert.True(await Eventually.TrueAsync(async () => await LatestAsync(server, "level-p", "p50") == 30, Timeout, Ct));
        Assert.True(await Eventually.TrueAsync(async () => await LatestAsync(server, "sites", "cardinality") == 2, Timeout, Ct));

        // An update recomputes at once; a delete stops it.
        var updated = await server.IotCallsAsync([
            ("update_fleet_metric", new { metricName = "north-level", indexName = "AWS_Things", queryString = "attributes.site:south", expectedVersion = 1 }),
            ("update_fleet_metric", new { metricName = "north-level", indexName = "AWS_Things", queryString = "*", expectedVersion = 1 }),
            ("describe_fleet_metric", new { metricName = "north-level" }),
            ("delete_fleet_metric", new { metricName = "sites" }),
            ("describe_fleet_metric", new { metricName = "sites" }),
        ], Ct);
        Assert.Equal(200, updated[0]!["status"]!.GetValue<int>());
        Assert.Equal("VersionConflictException", updated[1]!["error"]!.GetValue<string>());
        Assert.Equal(2L, updated[2]!["body"]!["version"]!.GetValue<long>());
        Assert.Equal(404, updated[4]!["status"]!.GetValue<int>());
        Assert.True(await Eventually.TrueAsync(async () => await LatestAsync(server, "north-level", "average") == 90, Timeout, Ct), "the update was not computed");
    }

    public void Dispose()
    {
        if (Directory.Exists(_data))
        {
            Directory.Delete(_data, recursive: true);
        }
    }

    /// <summary>The latest value of a fleet metric's measure in the time-series store (series fleet.NAME), or null.</summary>
    private static async Task<double?> LatestAsync(ServerProcess server, string metric, string measure)
    {
        var answer = await server.SignedAsync("GET", $"/api/telemetry/things/fleet.{metric}/{measure}", null, Ct);
        var points = answer["body"]?["points"]?.AsArray();
        return points is { Count: > 0 } ? points[^1]!["v"]!.GetValue<double>() : null;
    }

    private static Task<ExternalTool.Result> CliAsync(ServerProcess server, string[] args) =>
        ExternalTool.RunAsync(TrellisCli.FileName, [.. TrellisCli.Leading, .. args, "--endpoint", server.Endpoint, "--data", server.DataDirectory], TimeSpan.FromSeconds(60), new Dictionary<string, string> { ["AWS_PROFILE"] = "trellis" }, Ct);

    private static async Task<List<string>> SearchAsync(ServerProcess server, string query)
    {
        var result = (await server.IotCallsAsync([("search_index", new { queryString = query })], Ct))[0]!;
        return result["status"]!.GetValue<int>() == 200 ? Names(result) : ["error: " + result.ToJsonString()];
    }

    private static List<string> Names(JsonNode result) =>
        [.. (result["body"] ?? result)["things"]!.AsArray().Select(t => t!["thingName"]!.GetValue<string>())];

    private static List<string> Members(JsonNode?[] results) =>
        [.. results[0]!["body"]!["things"]!.AsArray().Select(t => t!.GetValue<string>())];
}
