using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Trellis.Telemetry;

namespace Trellis.LoadGen;

/// <summary>
/// In-process figures of the time-series store: the append rate of its writer, then query latency
/// over the points written (default 10 million: 10 000 things, one point each every ~86 s over 24
/// hours): a 24-hour per-minute downsample of one thing, the latest value of every thing, and an
/// aggregate over the whole range. Each query runs several times; medians are reported.
/// </summary>
internal static class TelemetryStoreBench
{
    public static async Task RunAsync(int things, long points, Action<Dictionary<string, object?>> emit)
    {
        var folder = Path.Combine(Path.GetTempPath(), $"trellis-telemetry-bench-{Environment.ProcessId}");
        Directory.CreateDirectory(folder);
        try
        {
            await using var store = new TelemetryStore(Path.Combine(folder, "telemetry.duckdb"), NullLogger<TelemetryStore>.Instance);
            using var cts = new CancellationTokenSource();
            var writer = store.RunAsync(cts.Token);
            var start = new DateTimeOffset(2026, 11, 26, 0, 0, 0, TimeSpan.Zero).ToUnixTimeMilliseconds();
            var step = 86_400_000.0 / (points / things);
            var names = Enumerable.Range(0, things).Select(i => $"thing-{i}").ToArray();
            var clock = Stopwatch.StartNew();
            for (long i = 0; i < points; i++)
            {
                var thing = (int)(i % things);
                await store.WriteAsync(new TelemetryPoint(start + (long)(i / things * step), names[thing], "temp", 20 + (i % 100) / 10.0));
            }

            await store.FlushAsync(TimeSpan.FromMinutes(10));
            var appendSeconds = clock.Elapsed.TotalSeconds;
            emit(new Dictionary<string, object?>
            {
                ["summary"] = true,
                ["scenario"] = "telemetry-store",
                ["part"] = "append",
                ["points"] = store.Written,
                ["things"] = things,
                ["pointsPerSecond"] = Math.Round(store.Written / appendSeconds),
            });

            // The day is over (it is in the past): compaction sorts it by thing, measure and time.
            clock.Restart();
            var compacted = store.Compact();
            emit(new Dictionary<string, object?>
            {
                ["summary"] = true,
                ["scenario"] = "telemetry-store",
                ["part"] = "compact",
                ["days"] = compacted.Count,
                ["seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 2),
            });

            var end = start + 86_400_000;
            Report(emit, "downsample one thing, 24 h per minute", () => store.Downsample("thing-42", "temp", start, end, 60).Count);
            Report(emit, $"latest value of {things} things", () => store.Latest("temp", names).Count);
            Report(emit, "aggregate over the whole range (avg, min, max, sum, count of all points)", () => (int)store.Summary(null, "temp", start, end).Count);
            Report(emit, "hourly buckets over the whole range, all things (avg, min, max, sum, count, first, last)", () => store.Downsample(null, "temp", start, end, 3600).Count);
            await cts.CancelAsync();
            await writer;
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static void Report(Action<Dictionary<string, object?>> emit, string query, Func<int> run)
    {
        var rows = run(); // warm-up
        var times = new List<double>();
        for (var i = 0; i < 7; i++)
        {
            var clock = Stopwatch.StartNew();
            rows = run();
            times.Add(clock.Elapsed.TotalMilliseconds);
        }

        times.Sort();
        emit(new Dictionary<string, object?>
        {
            ["summary"] = true,
            ["scenario"] = "telemetry-store",
            ["part"] = "query",
            ["query"] = query,
            ["rows"] = rows,
            ["medianMs"] = Math.Round(times[times.Count / 2], 2),
            ["maxMs"] = Math.Round(times[^1], 2),
        });
    }
}
