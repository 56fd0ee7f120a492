using System.Diagnostics;
using Trellis.Broker.Internal;
using Trellis.Broker.Persistence;
using Trellis.Broker.Protocol;
using Trellis.Storage;

namespace Trellis.LoadGen;

/// <summary>
/// The persistent-session journal alone, in its worst case: every message must be written (its
/// subscriber is offline or stuck, so no acknowledgement cancels an insert before its commit), with
/// <c>inFlight</c> appends waiting at once as publishers' unacknowledged QoS 1 messages do. Reports
/// durable messages per second, rows per commit and the append-to-durable latency.
/// </summary>
internal static class JournalBench
{
    public static async Task RunAsync(int inFlight, int payloadBytes, double seconds, Action<Dictionary<string, object?>> emit)
    {
        var folder = Path.Combine(Path.GetTempPath(), $"trellis-journal-bench-{Environment.ProcessId}");
        Directory.CreateDirectory(folder);
        try
        {
            using var store = new BrokerStore(
                new SqliteDatabase(Path.Combine(folder, "trellis.db"), Schema.Migrations),
                new SqliteDatabase(Path.Combine(folder, "sessions.db"), BrokerStore.SessionMigrations));
            store.LoadSessions();
            var journal = store.Journal;
            var payload = new byte[payloadBytes];
            var histogram = new LatencyHistogram();
            var stop = Stopwatch.GetTimestamp() + (long)(seconds * Stopwatch.Frequency);
            long appended = 0;
            var started = Stopwatch.GetTimestamp();
            var workers = Enumerable.Range(0, inFlight).Select(w => Task.Run(async () =>
            {
                var client = $"bench-sub-{w % 20}";
                while (Stopwatch.GetTimestamp() < stop)
                {
                    var message = new MqttMessage { Topic = "bench/fanin", Payload = payload, Qos = 1, SenderClientId = "bench-pub", ReceivedAtMs = 1 };
                    var item = new Outgoing(message, 1, false, null, journal.NextSeq());
                    var sent = Stopwatch.GetTimestamp();
                    await journal.AppendAsync(client, item);
                    lock (histogram)
                    {
                        histogram.Record(Stopwatch.GetElapsedTime(sent).Ticks / 10);
                    }

                    Interlocked.Increment(ref appended);
                }
            })).ToList();
            await Task.WhenAll(workers);
            var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
            emit(new Dictionary<string, object?>
            {
                ["summary"] = true,
                ["scenario"] = "session-journal",
                ["inFlight"] = inFlight,
                ["payloadBytes"] = payloadBytes,
                ["messagesPerSecond"] = Math.Round(appended / elapsed),
                ["rowsPerCommit"] = Math.Round(journal.Written / (double)Math.Max(1, journal.Commits), 1),
                ["p50ms"] = histogram.PercentileMs(0.5),
                ["p99ms"] = histogram.PercentileMs(0.99),
            });
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
