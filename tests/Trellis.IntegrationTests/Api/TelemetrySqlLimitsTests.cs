using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;
using Trellis.Server;
using Trellis.Telemetry;

namespace Trellis.IntegrationTests.Api;

/// <summary>A server whose SQL endpoint runs one query at a time for at most two seconds, with a 16 MiB memory budget and 4 KiB answers.</summary>
public sealed class TightSqlHost : TrellisHost
{
    protected override TrellisServerOptions Configure(TrellisServerOptions options) => options with
    {
        ConfigureTelemetryQuery = q =>
        {
            q.TimeoutSeconds = 2;
            q.MaxConcurrent = 1;
            q.MemoryMiB = 16;
            q.MaxResultBytes = 4096;
        },
    };
}

[CollectionDefinition(Name)]
public sealed class TightSqlGroup : ICollectionFixture<TightSqlHost>
{
    public const string Name = "tight-sql";
}

/// <summary>
/// The telemetry SQL endpoint, which any key may use (a viewer's here): it cannot read the
/// machine's files in any form DuckDB offers, and every query is bounded in time, memory,
/// concurrency and answer size, with AWS-style errors.
/// </summary>
[Collection(TightSqlGroup.Name)]
public sealed class TelemetrySqlLimitsTests(TightSqlHost host)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task No_form_of_file_access_reads_a_file()
    {
        var viewer = await ViewerAsync();
        var secret = Path.Combine(host.DataDirectory, "exports", "planted.csv");
        await File.WriteAllTextAsync(secret, "secret\nplanted-in-the-export-folder\n", Ct);
        var credentials = host.Server.Data.CredentialsPath;
        foreach (var statement in new[]
        {
            "SELECT * FROM '/etc/passwd'",
            "FROM '/etc/passwd'",
            "SELECT * FROM '/etc/*'",
            $"SELECT * FROM '{credentials}'",
            "SELECT * FROM 'credentials'",
            $"SELECT * FROM '{secret}'",
            $"SELECT * FROM '{Path.GetDirectoryName(secret)}/*.csv'",
            "SELECT * FROM '/etc/hostname.json'",
            "SELECT * FROM '/tmp/*.parquet'",
            "SELECT * FROM read_csv('/etc/passwd')",
            "SELECT * FROM read_csv_auto('/etc/passwd')",
            "SELECT * FROM read_json_auto('/etc/os-release')",
            "SELECT * FROM read_parquet('/tmp/x.parquet')",
            "SELECT * FROM read_text('/etc/passwd')",
            "SELECT * FROM read_blob('/etc/passwd')",
            "SELECT * FROM glob('/etc/*')",
            "SELECT * FROM sniff_csv('/etc/passwd')",
            "SELECT * FROM parquet_metadata('/tmp/x.parquet')",
            "SELECT * FROM duckdb_settings()",
            "SELECT current_setting('enable_external_access')",
            "SELECT getenv('HOME')",
            "SELECT * FROM main.points",
            "SELECT * FROM system.main.duckdb_settings",
            "WITH f AS (SELECT * FROM '/etc/passwd') SELECT * FROM f",
            "SELECT (SELECT count(*) FROM '/etc/passwd')",
            "COPY (SELECT 1) TO '/tmp/trellis-copy.csv'",
            "ATTACH '/tmp/trellis-attach.db'",
            "INSTALL httpfs",
            "LOAD json",
            "SET enable_external_access = true",
            "PRAGMA show_tables",
        })
        {
            var answer = await SqlAsync(statement, viewer);
            Assert.True(answer["status"]!.GetValue<int>() == 400, statement + " → " + answer.ToJsonString());
            Assert.Equal("InvalidRequestException", answer["headers"]!["x-amzn-ErrorType"]!.GetValue<string>());
            Assert.DoesNotContain("root:", answer.ToJsonString(), StringComparison.Ordinal);
            Assert.DoesNotContain("planted-in-the-export-folder", answer.ToJsonString(), StringComparison.Ordinal);
        }

        Assert.False(File.Exists("/tmp/trellis-copy.csv"));
        Assert.False(File.Exists("/tmp/trellis-attach.db"));

        // The viewer may still query the store.
        var ok = await SqlAsync("SELECT count(*) AS n FROM points", viewer);
        Assert.True(ok["status"]!.GetValue<int>() == 200, ok.ToJsonString());
    }

    [Fact]
    public async Task A_list_of_a_hundred_million_numbers_is_refused_before_it_runs()
    {
        var started = DateTime.UtcNow;
        foreach (var statement in new[]
        {
            "SELECT len(generate_series(1, 100000000))",
            "SELECT len(range(100000000))",
            "SELECT length(repeat('x', 1000000000))",
            "SELECT [x FOR x IN [1, 2]]",
            "SELECT list(value) FROM points",
            "SELECT string_agg(thing, ',') FROM points",
        })
        {
            var answer = await SqlAsync(statement, null);
            Assert.True(answer["status"]!.GetValue<int>() == 400, statement + " → " + answer.ToJsonString());
            Assert.Contains("not allowed", answer["body"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        }

        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(30), "the refusals took as long as running the queries");
    }

    [Fact]
    public async Task A_query_past_its_time_out_is_interrupted_and_a_second_meanwhile_is_throttled()
    {
        var prefix = await PointsAsync(2000);

        // 2000³ rows: far longer than the two-second limit. While it runs, probes signed in-process
        // (a python start-up each could miss the whole two seconds on a loaded machine) ask again and
        // again until one is throttled. If a probe held the slot when the slow query arrived, the slow
        // one was itself throttled, and the round is run again.
        using var http = new HttpClient();
        (int Status, string? ErrorType)? throttled = null;
        JsonNode answer;
        var rounds = 0;
        do
        {
            var slow = SqlAsync($"SELECT count(*) FROM points a, points b, points c WHERE a.thing LIKE '{prefix}%'", null);
            while (!slow.IsCompleted && throttled is null)
            {
                var probe = await ProbeAsync(http);
                if (probe.Status == 429)
                {
                    throttled = probe;
                }
                else
                {
                    Assert.Equal(200, probe.Status);
                    await Task.Delay(50, TestContext.Current.CancellationToken);
                }
            }

            answer = await slow;
        }
        while (answer["status"]!.GetValue<int>() == 429 && ++rounds < 3);

        Assert.True(answer["status"]!.GetValue<int>() == 400, answer.ToJsonString());
        Assert.Contains("longer than 2 s", answer["body"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.True(throttled is not null, "no second query was throttled while the first ran");
        Assert.Equal("ThrottlingException", throttled!.Value.ErrorType);

        // The slot is free again once the engine has stopped (on a loaded machine that can trail the answer by a moment).
        Assert.True(await Eventually.TrueAsync(async () => (await SqlAsync("SELECT 1 AS one", null))["status"]!.GetValue<int>() == 200, TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken), "the query slot stayed taken after the time-out");
    }

    [Fact]
    public async Task A_query_past_its_memory_budget_is_stopped_and_a_large_answer_is_refused()
    {
        var prefix = await PointsAsync(2000);

        // Four million distinct keys in a hash table: far more than the 16 MiB budget.
        var heavy = await SqlAsync($"SELECT count(DISTINCT a.thing || b.thing) FROM points a, points b WHERE a.thing LIKE '{prefix}%' AND b.thing LIKE '{prefix}%'", null);
        Assert.True(heavy["status"]!.GetValue<int>() == 400, heavy.ToJsonString());
        Assert.Contains("MiB", heavy["body"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);

        var large = await SqlAsync($"SELECT thing, measure, ts FROM points WHERE thing LIKE '{prefix}%'", null);
        Assert.True(large["status"]!.GetValue<int>() == 413, large.ToJsonString());
        Assert.Equal("RequestEntityTooLargeException", large["headers"]!["x-amzn-ErrorType"]!.GetValue<string>());
        Assert.Contains("4096 bytes", large["body"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);

        // Within the limits the same data answers.
        var small = await SqlAsync($"SELECT count(*) AS n FROM points WHERE thing LIKE '{prefix}%'", null);
        Assert.Equal("[[2000]]", small["body"]!["rows"]!.ToJsonString());
    }

    private async Task<string> PointsAsync(int count)
    {
        var prefix = TrellisHost.Unique("sqlp");
        var store = (TelemetryStore)host.Server.Services.GetService(typeof(TelemetryStore))!;
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        for (var i = 0; i < count; i++)
        {
            await store.WriteAsync(new TelemetryPoint(now - i, $"{prefix}-{i}", "temp", i), Ct);
        }

        await store.FlushAsync(TimeSpan.FromSeconds(30));
        return prefix;
    }

    private Task<JsonNode> SqlAsync(string statement, (string KeyId, string Secret)? credentials) =>
        host.SignedRequestAsync("POST", "/api/telemetry/sql", new JsonObject { ["sql"] = statement }.ToJsonString(), Ct, credentials);

    /// <summary>"SELECT 1" signed in-process with the admin key: its status and <c>x-amzn-ErrorType</c>.</summary>
    private async Task<(int Status, string? ErrorType)> ProbeAsync(HttpClient http)
    {
        using var request = host.AdminSignedRequest(HttpMethod.Post, "/api/telemetry/sql", """{"sql":"SELECT 1 AS one"}"""u8.ToArray(), "application/json");
        using var response = await http.SendAsync(request, Ct);
        return ((int)response.StatusCode, response.Headers.TryGetValues("x-amzn-ErrorType", out var types) ? types.First() : null);
    }

    private Task<(string KeyId, string Secret)> ViewerAsync() => host.CreateApiUserAsync(TrellisHost.Unique("viewer"), "viewer", Ct);
}
