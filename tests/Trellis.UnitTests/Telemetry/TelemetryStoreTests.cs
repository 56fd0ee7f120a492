using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Trellis.Telemetry;

namespace Trellis.UnitTests.Telemetry;

/// <summary>The store's day layout, compaction with late points, and retention, on a real DuckDB file with a fake clock.</summary>
public sealed class TelemetryStoreTests : IAsyncDisposable
{
    private static readonly DateTimeOffset Day1 = new(2026, 11, 20, 0, 0, 0, TimeSpan.Zero);
    private readonly string _directory = Directory.CreateTempSubdirectory("trellis-telemetry-").FullName;
    private readonly FakeTimeProvider _time = new(Day1.AddDays(1).AddHours(1));
    private readonly TelemetryStore _store;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _writer;

    public TelemetryStoreTests()
    {
        _store = new TelemetryStore(Path.Combine(_directory, "t.duckdb"), NullLogger<TelemetryStore>.Instance, time: _time);
        _writer = _store.RunAsync(_stop.Token);
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _writer;
        await _store.DisposeAsync();
        _stop.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public void The_engine_itself_cannot_read_files_or_change_its_settings_on_any_connection()
    {
        // Past the endpoint's statement checks: a plain connection to the same database instance.
        using var connection = new DuckDB.NET.Data.DuckDBConnection($"Data Source={_store.Path}");
        connection.Open();
        foreach (var sql in new[]
        {
            "SELECT * FROM read_csv('/etc/passwd')",
            "SELECT * FROM '/etc/passwd'",
            "COPY (SELECT 1) TO '" + Path.Combine(_directory, "out.csv") + "'",
            "ATTACH '" + Path.Combine(_directory, "other.db") + "'",
            "SET enable_external_access = true",
            "SET memory_limit = '100GB'",
        })
        {
            using var command = connection.CreateCommand();
            command.CommandText = sql;
            Assert.ThrowsAny<DuckDB.NET.Data.DuckDBException>(() => command.ExecuteNonQuery());
        }

        Assert.False(File.Exists(Path.Combine(_directory, "out.csv")));
        Assert.False(File.Exists(Path.Combine(_directory, "other.db")));
    }

    [Fact]
    public async Task A_finished_day_is_compacted_late_points_still_count_and_retention_drops_what_expired()
    {
        var t0 = Day1.ToUnixTimeMilliseconds();
        for (var i = 0; i < 100; i++)
        {
            await _store.WriteAsync(new TelemetryPoint(t0 + (i * 60_000), $"thing-{i % 3}", "temp", i), Ct);
            await _store.WriteAsync(new TelemetryPoint(t0 + (i * 60_000), $"thing-{i % 3}", "hum", 50), Ct);
        }

        await _store.FlushAsync(TimeSpan.FromSeconds(10));
        Assert.Empty(_store.Compact()); // within the grace period after the day's end
        _time.Advance(TimeSpan.FromHours(2));
        Assert.Equal(["p_20261120"], _store.Compact());

        // A late point for the compacted day lands in its _late table and is read with the rest.
        await _store.WriteAsync(new TelemetryPoint(t0 + 3_600_000 + 30_000, "thing-0", "temp", 1000), Ct);
        await _store.FlushAsync(TimeSpan.FromSeconds(10));
        var range = _store.Range("thing-0", "temp", t0, t0 + 86_400_000, 1000);
        Assert.Equal(35, range.Count);
        Assert.Equal([.. range.OrderBy(p => p.TimestampMs)], range);
        Assert.Contains(range, p => p.Value == 1000);
        Assert.Equal(35, _store.Summary("thing-0", "temp", t0, t0 + 86_400_000).Count);

        // temp is kept one day, hum forever: after a day temp is gone from the day, hum stays.
        _store.SetRetention("temp", 1);
        Assert.Empty(_store.ApplyRetention());
        Assert.Equal(35, _store.Summary("thing-0", "temp", t0, t0 + 86_400_000).Count);
        _time.Advance(TimeSpan.FromDays(1));
        Assert.Empty(_store.ApplyRetention());
        Assert.Equal(0, _store.Summary("thing-0", "temp", t0, t0 + 86_400_000).Count);
        Assert.Equal(34, _store.Summary("thing-0", "hum", t0, t0 + 86_400_000).Count);

        // A default of one day for everything else: the whole day goes.
        _store.SetRetention("*", 1);
        Assert.Equal(["p_20261120"], _store.ApplyRetention());
        Assert.Equal(0, _store.Summary(null, "hum", t0, t0 + 86_400_000).Count);
        Assert.Equal(new Dictionary<string, int> { ["*"] = 1, ["temp"] = 1 }, _store.Retention());
    }

    [Fact]
    public async Task A_thing_s_latest_values_are_its_own_measures_by_name_each_with_its_newest_point()
    {
        var t0 = Day1.ToUnixTimeMilliseconds();
        await _store.WriteAsync(new TelemetryPoint(t0 + 2_000, "pump-1", "temp", 21), Ct);
        await _store.WriteAsync(new TelemetryPoint(t0 + 1_000, "pump-1", "temp", 20), Ct); // older: not the latest
        await _store.WriteAsync(new TelemetryPoint(t0 + 1_000, "pump-1", "flow", 3), Ct);
        await _store.WriteAsync(new TelemetryPoint(t0 + 1_000, "pump-10", "pressure", 7), Ct);
        await _store.WriteAsync(new TelemetryPoint(t0 + 3_000, "pump-1", "rpm", 1500), Ct);
        await _store.FlushAsync(TimeSpan.FromSeconds(10));
        await _store.WriteAsync(new TelemetryPoint(t0 + 4_000, "pump-1", "flow", 4), Ct);
        await _store.FlushAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(
            [new TelemetryPoint(t0 + 4_000, "pump-1", "flow", 4), new TelemetryPoint(t0 + 3_000, "pump-1", "rpm", 1500), new TelemetryPoint(t0 + 2_000, "pump-1", "temp", 21)],
            _store.LatestOf("pump-1"));
        Assert.Equal([new TelemetryPoint(t0 + 1_000, "pump-10", "pressure", 7)], _store.LatestOf("pump-10"));
        Assert.Empty(_store.LatestOf("pump-2"));
    }
}
