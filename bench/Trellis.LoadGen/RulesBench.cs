using System.Diagnostics;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Trellis.Rules;
using Trellis.Storage;

namespace Trellis.LoadGen;

/// <summary>
/// The rules engine alone, in-process: messages queued as the broker queues them, one store rule
/// (<c>SELECT temp, hum … WHERE temp &gt; -100</c> with the timestream action) evaluated by the
/// engine's worker into a sink that only counts. Answers "how many points per second can the
/// rules path produce before the store or MQTT are involved?".
/// </summary>
internal static class RulesBench
{
    public static async Task RunAsync(int messages, Action<Dictionary<string, object?>> emit)
    {
        var folder = Path.Combine(Path.GetTempPath(), $"trellis-rules-bench-{Environment.ProcessId}");
        Directory.CreateDirectory(folder);
        try
        {
            var sink = new CountingSink();
            var engine = new RuleEngine(new SqliteDatabase(Path.Combine(folder, "trellis.db"), Schema.Migrations), new RuleTargets(new NoPublisher(), sink), TimeProvider.System,
                NullLogger<RuleEngine>.Instance, r => "arn:aws:iot:us-east-1:000000000000:" + r, "000000000000", queueCapacity: messages + 1);
            var rule = engine.Create("store_bench", new TopicRuleInput(
                "SELECT temp, hum FROM 'dt/+/telemetry' WHERE temp > -100",
                [System.Text.Json.Nodes.JsonNode.Parse("""
                    {"timestream": {"roleArn": "r", "databaseName": "d", "tableName": "t", "dimensions": [{"name": "thing", "value": "${topic(2)}"}]}}
                    """)!.AsObject()]));
            if (!rule.IsSuccess)
            {
                throw new InvalidOperationException(rule.Error!.Message);
            }

            var topics = Enumerable.Range(0, 1000).Select(i => $"dt/dev-{i}/telemetry").ToArray();
            var payloads = Enumerable.Range(0, 100).Select(i => Encoding.UTF8.GetBytes($"{{\"temp\":{20 + (i / 10.0)},\"hum\":{40 + i % 7},\"fw\":\"1.4.2\"}}")).ToArray();
            for (var i = 0; i < messages; i++)
            {
                engine.TryEnqueue(topics[i % topics.Length], payloads[i % payloads.Length], "dev", null, null, mayRefuse: false);
            }

            using var cts = new CancellationTokenSource();
            var clock = Stopwatch.StartNew();
            var worker = engine.RunAsync(cts.Token);
            while (Interlocked.Read(ref sink.Points) < messages * 2L && clock.Elapsed < TimeSpan.FromMinutes(5))
            {
                await Task.Delay(5);
            }

            var seconds = clock.Elapsed.TotalSeconds;
            await cts.CancelAsync();
            await worker;
            emit(new Dictionary<string, object?>
            {
                ["summary"] = true,
                ["scenario"] = "rules",
                ["messages"] = messages,
                ["points"] = sink.Points,
                ["messagesPerSecond"] = Math.Round(messages / seconds),
                ["pointsPerSecond"] = Math.Round(sink.Points / seconds),
            });
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(folder, recursive: true);
        }
    }

    private sealed class CountingSink : ITelemetrySink
    {
        public long Points;

        public ValueTask WriteAsync(long timestampMs, string thing, string measure, double value, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Points);
            return ValueTask.CompletedTask;
        }
    }

    private sealed class NoPublisher : IRulePublisher
    {
        public void Publish(string topic, byte[] payload, byte qos, bool retain, string origin)
        {
        }
    }
}
