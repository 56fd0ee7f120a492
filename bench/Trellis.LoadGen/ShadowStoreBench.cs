using System.Diagnostics;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Trellis.Shadows;
using Trellis.Storage;

namespace Trellis.LoadGen;

/// <summary>
/// In-process capacity of the shadow path without MQTT: (1) the store alone (durable writes of
/// whole shadow documents through the group-commit writer) and (2) the shadow service (parse,
/// merge, delta, durable write) across many things, with many updates in flight, for a fixed time.
/// Answers "is the store the bottleneck below AWS's 20 updates/s per thing?".
/// </summary>
internal static class ShadowStoreBench
{
    public static async Task RunAsync(int things, int inFlight, double seconds, Action<Dictionary<string, object?>> emit)
    {
        var folder = Path.Combine(Path.GetTempPath(), $"trellis-shadow-bench-{Environment.ProcessId}");
        Directory.CreateDirectory(folder);
        try
        {
            await using (var store = new ShadowStore(new SqliteDatabase(Path.Combine(folder, "store.db"), ShadowStore.Migrations)))
            {
                var document = ShadowDocument.Absent();
                ShadowRequest.ParseUpdate(Encoding.UTF8.GetBytes("""{"state":{"desired":{"color":"red","level":3,"cfg":{"mode":"auto","interval":30}},"reported":{"color":"blue","level":3,"fw":"1.4.2"}}}"""), new ShadowOptions(), out var update, out _);
                document = document.Apply(update!, 1);
                var (count, p50, p99, elapsed) = await DriveAsync(things, inFlight, seconds, (i, _) => store.SaveAsync(new ShadowKey($"thing-{i}", string.Empty), document, 0));
                emit(new Dictionary<string, object?>
                {
                    ["summary"] = true,
                    ["scenario"] = "shadow-store",
                    ["part"] = "store",
                    ["things"] = things,
                    ["inFlight"] = inFlight,
                    ["writesPerSecond"] = Math.Round(count / elapsed),
                    ["writesPerCommit"] = Math.Round(store.Written / (double)Math.Max(1, store.Commits), 1),
                    ["p50ms"] = p50,
                    ["p99ms"] = p99,
                });
            }

            await using (var store = new ShadowStore(new SqliteDatabase(Path.Combine(folder, "service.db"), ShadowStore.Migrations)))
            {
                var options = new ShadowOptions { MaxUpdatesPerSecondPerThing = 0 };
                var service = new ShadowService(store, options, new NoPublisher(), _ => true, TimeProvider.System, NullLogger<ShadowService>.Instance);
                var (count, p50, p99, elapsed) = await DriveAsync(things, inFlight, seconds, async (i, sequence) =>
                {
                    var payload = Encoding.UTF8.GetBytes("{\"state\":{\"desired\":{\"color\":\"red\",\"level\":" + sequence + "},\"reported\":{\"color\":\"blue\",\"level\":" + (sequence - 1) + "}}}");
                    var result = await service.UpdateAsync(new ShadowKey($"thing-{i}", string.Empty), payload);
                    if (!result.Accepted)
                    {
                        throw new InvalidOperationException(result.Error!.Message);
                    }
                });
                emit(new Dictionary<string, object?>
                {
                    ["summary"] = true,
                    ["scenario"] = "shadow-store",
                    ["part"] = "service",
                    ["things"] = things,
                    ["inFlight"] = inFlight,
                    ["updatesPerSecond"] = Math.Round(count / elapsed),
                    ["writesPerCommit"] = Math.Round(store.Written / (double)Math.Max(1, store.Commits), 1),
                    ["p50ms"] = p50,
                    ["p99ms"] = p99,
                });
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>Keeps <paramref name="inFlight"/> operations going over <paramref name="things"/> things (round robin) for the duration.</summary>
    private static async Task<(long Count, double P50, double P99, double Elapsed)> DriveAsync(int things, int inFlight, double seconds, Func<int, long, Task> operation)
    {
        var histogram = new LatencyHistogram();
        var gate = new Lock();
        long next = 0, done = 0;
        var end = Stopwatch.GetTimestamp() + (long)(seconds * Stopwatch.Frequency);
        var started = Stopwatch.GetTimestamp();
        var workers = Enumerable.Range(0, inFlight).Select(_ => Task.Run(async () =>
        {
            var local = new LatencyHistogram();
            while (Stopwatch.GetTimestamp() < end)
            {
                var n = Interlocked.Increment(ref next);
                var t0 = Stopwatch.GetTimestamp();
                await operation((int)(n % things), (n / things) + 2);
                local.Record(Stopwatch.GetElapsedTime(t0).Ticks / 10);
                Interlocked.Increment(ref done);
            }

            lock (gate)
            {
                histogram.Merge(local);
            }
        }));
        await Task.WhenAll(workers);
        var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
        return (done, histogram.PercentileMs(0.5), histogram.PercentileMs(0.99), elapsed);
    }

    private sealed class NoPublisher : IShadowPublisher
    {
        public void Publish(string topic, byte[] payload, string? requesterClientId)
        {
        }

        public bool HasSubscribers(string topic) => false;
    }
}
