using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Trellis.Security.SigV4;

namespace Trellis.LoadGen;

/// <summary>
/// End to end ingest: publishers send JSON telemetry (<c>{"temp":…,"hum":…}</c>, QoS 0) on
/// <c>ingest/dev-N/t</c> at a ladder of rates. Against Trellis a store rule turns each message into
/// two points, and after each step the points are counted through the SQL endpoint until they stop
/// coming: a step passes when every point is queryable within a second of the last publish. Against Mosquitto (which stores nothing) the
/// same publishers only show what the broker accepts, side by side.
/// </summary>
internal static class IngestBench
{
    private const string Payload = "{\"temp\":21.5,\"hum\":40}";

    /// <summary>How long after the last publish every point must be queryable for a step to pass.</summary>
    private const double MaxLagSeconds = 1.0;

    public static async Task RunAsync(string[] args, string name, string host, int port, BrokerProcess broker, double[] rates, double seconds, Action<Dictionary<string, object?>> emit, CancellationToken ct)
    {
        var publishers = int.Parse(Get(args, "--publishers", "100"), CultureInfo.InvariantCulture);
        var api = Get(args, "--api", string.Empty);
        var keyId = Get(args, "--key-id", string.Empty);
        var secret = Get(args, "--secret", string.Empty);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };

        var sockets = new List<Socket>();
        var frames = new List<byte[]>();
        for (var i = 0; i < publishers; i++)
        {
            sockets.Add(await MqttWire.OpenAsync(host, port, $"ingest-pub-{i}", ct));
            var frame = MqttWire.PublishTemplate($"ingest/dev-{i}/t", 0, Payload.Length, out var offset, out _);
            Encoding.ASCII.GetBytes(Payload).CopyTo(frame, offset);
            frames.Add(frame);
        }

        long stored = api.Length > 0 ? await CountAsync(http, api, keyId, secret, ct) : 0;
        if (int.Parse(Get(args, "--sustain", "0"), CultureInfo.InvariantCulture) is var sustain and > 0)
        {
            await SustainAsync(sockets, frames, rates[0], sustain, name, broker, http, api, keyId, secret, stored, emit, ct);
            return;
        }

        var best = 0.0;
        var failures = 0;
        foreach (var rate in rates)
        {
            broker.CpuNanoseconds();
            var clock = Stopwatch.StartNew();
            var sent = await PaceAsync(sockets, frames, rate, TimeSpan.FromSeconds(seconds), ct);
            var sendSeconds = clock.Elapsed.TotalSeconds;
            var cpu = broker.CpuNanoseconds() / (sendSeconds * 1e7);
            long? points = null;
            double? lagSeconds = null;
            if (api.Length > 0)
            {
                // Count until every point is queryable, or the count stops moving for two seconds.
                var expected = stored + (sent * 2);
                var last = stored;
                var still = Stopwatch.StartNew();
                while (true)
                {
                    var now = await CountAsync(http, api, keyId, secret, ct);
                    if (now >= expected || (now == last && still.Elapsed > TimeSpan.FromSeconds(2)))
                    {
                        points = now - stored;
                        stored = now;
                        break;
                    }

                    if (now != last)
                    {
                        last = now;
                        still.Restart();
                    }

                    await Task.Delay(100, ct);
                }

                lagSeconds = Math.Round(clock.Elapsed.TotalSeconds - sendSeconds, 2);
            }

            // Publishers are held back (not dropped) when the rules fall behind, so every point
            // arrives in the end: a step passes only if the server also kept up, i.e. the last
            // point was queryable within a second of the last publish. The rate is measured over
            // publishing plus that lag.
            var offeredOk = sent >= rate * seconds * 0.97;
            var passed = offeredOk && (points is null || (points == sent * 2 && lagSeconds <= MaxLagSeconds));
            emit(new Dictionary<string, object?>
            {
                ["broker"] = name,
                ["scenario"] = "ingest",
                ["offered"] = rate,
                ["sent"] = sent,
                ["points"] = points,
                ["pointsPerSecond"] = points is null ? null : Math.Round(points.Value / (sendSeconds + lagSeconds!.Value)),
                ["queryableAfterSeconds"] = lagSeconds,
                ["cpuPct"] = Math.Round(cpu),
                ["rssMiB"] = broker.RssKiB() / 1024,
                ["passed"] = passed,
            });
            if (passed)
            {
                best = Math.Max(best, rate);
                failures = 0;
            }
            else if (++failures >= 2)
            {
                break;
            }
        }

        emit(new Dictionary<string, object?>
        {
            ["summary"] = true,
            ["broker"] = name,
            ["scenario"] = "ingest",
            ["zeroLossRate"] = best,
            ["pointsPerSecond"] = api.Length > 0 ? best * 2 : null,
        });
        foreach (var socket in sockets)
        {
            socket.Dispose();
        }
    }

    /// <summary>
    /// One rate held for <paramref name="seconds"/>: every 5 s the broker's RSS and the points stored
    /// so far, to see whether memory stays flat under sustained ingest.
    /// </summary>
    private static async Task SustainAsync(List<Socket> sockets, List<byte[]> frames, double rate, int seconds, string name, BrokerProcess broker,
        HttpClient http, string api, string keyId, string secret, long stored, Action<Dictionary<string, object?>> emit, CancellationToken ct)
    {
        long sent = 0;
        var samples = new List<Dictionary<string, object?>>();
        for (var elapsed = 5; elapsed <= seconds; elapsed += 5)
        {
            sent += await PaceAsync(sockets, frames, rate, TimeSpan.FromSeconds(5), ct);
            var metrics = api.Length > 0 ? await MetricsAsync(http, api, ct) : [];
            samples.Add(new Dictionary<string, object?>
            {
                ["seconds"] = elapsed,
                ["rssMiB"] = broker.RssKiB() / 1024,
                ["points"] = api.Length > 0 ? await CountAsync(http, api, keyId, secret, ct) - stored : null,
                ["storeMiB"] = metrics.GetValueOrDefault("trellis_telemetry_engine_memory_bytes") / 1_048_576,
                ["heapMiB"] = metrics.Where(m => m.Key.StartsWith("dotnet_gc_last_collection_heap_size_bytes", StringComparison.Ordinal)).Sum(m => m.Value) / 1_048_576,
            });
        }

        await Task.Delay(2000, ct);
        var points = api.Length > 0 ? await CountAsync(http, api, keyId, secret, ct) - stored : (long?)null;
        emit(new Dictionary<string, object?>
        {
            ["summary"] = true,
            ["broker"] = name,
            ["scenario"] = "ingest-sustained",
            ["offered"] = rate,
            ["seconds"] = seconds,
            ["sent"] = sent,
            ["points"] = points,
            ["rssMiB"] = samples.Select(x => x["rssMiB"]).ToList(),
            ["pointsOverTime"] = samples.Select(x => x["points"]).ToList(),
            ["storeMiB"] = samples.Select(x => x["storeMiB"]).ToList(),
            ["heapMiB"] = samples.Select(x => x["heapMiB"]).ToList(),
        });
    }

    /// <summary>The server's Prometheus gauges and counters (no signature needed).</summary>
    private static async Task<Dictionary<string, double>> MetricsAsync(HttpClient http, string api, CancellationToken ct) =>
        PrometheusSamples.Parse(await http.GetStringAsync(api.TrimEnd('/') + "/metrics", ct));

    /// <summary>One pacer for all publishers, every millisecond, in batches (as the traffic scenarios do).</summary>
    private static async Task<long> PaceAsync(List<Socket> sockets, List<byte[]> frames, double rate, TimeSpan duration, CancellationToken ct)
    {
        var perPublisher = rate / sockets.Count;
        var sent = new long[sockets.Count];
        var batch = new byte[frames[0].Length * 256];
        var start = Stopwatch.GetTimestamp();
        var end = start + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < end)
        {
            var due = (long)(perPublisher * (Stopwatch.GetTimestamp() - start) / Stopwatch.Frequency);
            for (var i = 0; i < sockets.Count; i++)
            {
                var count = (int)Math.Min(due - sent[i], 256);
                if (count <= 0)
                {
                    continue;
                }

                var frame = frames[i];
                for (var k = 0; k < count; k++)
                {
                    frame.CopyTo(batch, k * frame.Length);
                }

                await sockets[i].SendAsync(batch.AsMemory(0, count * frame.Length), ct);
                sent[i] += count;
            }

            await Task.Delay(1, ct);
        }

        return sent.Sum();
    }

    private static async Task<long> CountAsync(HttpClient http, string api, string keyId, string secret, CancellationToken ct)
    {
        var endpoint = new Uri(api);
        var body = Encoding.UTF8.GetBytes(new JsonObject { ["sql"] = "SELECT count(*) FROM points WHERE thing LIKE 'dev-%'" }.ToJsonString());
        var hostHeader = endpoint.IsDefaultPort ? endpoint.Host : $"{endpoint.Host}:{endpoint.Port}";
        var headers = SigV4Signer.Sign("POST", hostHeader, "/api/telemetry/sql", string.Empty, body, keyId, secret, "us-east-1", "iot", DateTimeOffset.UtcNow);
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(endpoint, "/api/telemetry/sql")) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        foreach (var (header, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(header, value);
        }

        using var response = await http.SendAsync(request, ct);
        var answer = JsonNode.Parse(await response.Content.ReadAsStringAsync(ct))!;
        return answer["rows"]?[0]?[0]?.GetValue<double>() is { } count ? (long)count : throw new InvalidOperationException("count failed: " + answer.ToJsonString());
    }

    private static string Get(string[] args, string name, string fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }
}
