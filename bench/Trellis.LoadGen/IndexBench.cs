using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Trellis.Security.SigV4;

namespace Trellis.LoadGen;

/// <summary>
/// The fleet-index figures (issue 19): THINGS things (default 100 000) with three attributes and a
/// reported shadow, indexed live as they are created and updated. Reports (1) SearchIndex latency
/// for selective queries and aggregations over the whole fleet (p50/p99 of sequential calls through
/// SigV4 HTTP), beside the registry's own ListThings attribute filter (SQLite) as the baseline; and
/// (2) freshness: with shadow updates arriving at RATE per second over MQTT, the time from a probe
/// update's publish until SearchIndex finds its value (p50/p99).
/// </summary>
internal static class IndexBench
{
    public static async Task RunAsync(string[] args, string host, int port, BrokerProcess broker, Action<Dictionary<string, object?>> emit, CancellationToken ct)
    {
        using var api = new Api(Get(args, "--api", "http://127.0.0.1:8080"), Get(args, "--key-id", string.Empty), Get(args, "--secret", string.Empty));
        var count = int.Parse(Get(args, "--things", "100000"), CultureInfo.InvariantCulture);
        var rate = int.Parse(Get(args, "--rate", "5000"), CultureInfo.InvariantCulture);
        var seconds = int.Parse(Get(args, "--seconds", "20"), CultureInfo.InvariantCulture);
        var samples = int.Parse(Get(args, "--samples", "200"), CultureInfo.InvariantCulture);

        await api.CallAsync("POST", "/indexing/config", string.Empty, """{"thingIndexingConfiguration":{"thingIndexingMode":"REGISTRY_AND_SHADOW","thingConnectivityIndexingMode":"STATUS"}}""", ct);

        // 1. The registry: CreateThing through the API, 32 at a time.
        var clock = Stopwatch.StartNew();
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, 32).Select(async _ =>
        {
            for (var i = Interlocked.Increment(ref next); i < count; i = Interlocked.Increment(ref next))
            {
                var body = $$$$"""{"attributePayload":{"attributes":{"site":"site-{{{{i % 50}}}}","model":"m{{{{i % 7}}}}","serial":"SN-{{{{i:D7}}}}"}}}""";
                await api.CallAsync("POST", "/things/" + Name(i), string.Empty, body, ct);
            }
        }));
        var createRate = count / clock.Elapsed.TotalSeconds;

        // 2. A reported shadow for every thing, over MQTT at RATE updates per second.
        using var loaders = new Loaders(host, port, 16);
        await loaders.ConnectAsync(ct);
        clock.Restart();
        await loaders.SendAsync(Enumerable.Range(0, count).Select(i => (i, Temperature(i, 0))), rate, ct);
        var shadowSeconds = clock.Elapsed.TotalSeconds;
        var deadline = Stopwatch.StartNew();
        while ((await api.CallAsync("POST", "/indices/statistics", string.Empty, """{"queryString":"shadow.reported.temp:*"}""", ct))["statistics"]?["count"]?.GetValue<int>() != count)
        {
            if (deadline.Elapsed > TimeSpan.FromMinutes(5))
            {
                throw new InvalidOperationException("the index did not reach every shadow within 5 minutes");
            }

            await Task.Delay(200, ct);
        }

        var indexedAfter = clock.Elapsed.TotalSeconds;

        // 3. Freshness under load: RATE updates per second in the background, a probe every 100 ms.
        var metricsBefore = await api.MetricsAsync(ct);
        using var load = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var round = 1;
        var background = Task.Run(async () =>
        {
            while (!load.IsCancellationRequested)
            {
                var r = round++;
                await loaders.SendAsync(Enumerable.Range(0, rate).Select(k => ((k * 7919) % count, Temperature(k, r))), rate, load.Token);
            }
        }, ct);
        // One poller asks for every outstanding probe at once (field grouping), every 10 ms: the
        // measurement adds at most 100 searches a second, whatever the lag.
        var freshness = new List<double>();
        var afterAccept = new List<double>();
        var outstanding = new Dictionary<string, (int Marker, long Sent)>(StringComparer.Ordinal);
        var probing = true;
        using var polling = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var poller = Task.Run(async () =>
        {
            while (true)
            {
                (int Marker, long Sent)[] waiting;
                lock (outstanding)
                {
                    if (!probing && outstanding.Count == 0)
                    {
                        return;
                    }

                    waiting = [.. outstanding.Values];
                }

                if (waiting.Length > 0)
                {
                    var query = "shadow.reported.probe:(" + string.Join(" OR ", waiting.Select(w => w.Marker.ToString(CultureInfo.InvariantCulture))) + ")";
                    var found = await api.CallAsync("POST", "/indices/search", string.Empty, new JsonObject { ["queryString"] = query, ["maxResults"] = 100 }.ToJsonString(), polling.Token);
                    var now = Stopwatch.GetTimestamp();
                    lock (outstanding)
                    {
                        foreach (var thing in found["things"]?.AsArray() ?? [])
                        {
                            if (outstanding.Remove(thing!["thingName"]!.GetValue<string>(), out var probe))
                            {
                                freshness.Add((now - probe.Sent) * 1000.0 / Stopwatch.Frequency);
                                if (loaders.Accepted.TryGetValue(probe.Marker, out var accepted))
                                {
                                    afterAccept.Add((now - accepted) * 1000.0 / Stopwatch.Frequency);
                                }
                            }
                        }
                    }
                }

                await Task.Delay(10, polling.Token);
            }
        }, ct);
        for (var p = 0; p < seconds * 10; p++)
        {
            var marker = 1_000_000 + p;
            var thing = (p * 104729) % count;
            lock (outstanding)
            {
                outstanding[Name(thing)] = (marker, Stopwatch.GetTimestamp());
            }

            await loaders.PublishAsync(thing, "{\"state\":{\"reported\":{\"probe\":" + marker.ToString(CultureInfo.InvariantCulture) + "}}}", ct);
            await Task.Delay(100, ct);
        }

        lock (outstanding)
        {
            probing = false;
        }

        var lost = await Task.WhenAny(poller, Task.Delay(TimeSpan.FromSeconds(60), ct)) == poller ? 0 : outstanding.Count;
        await polling.CancelAsync();
        try
        {
            await poller;
        }
        catch (OperationCanceledException)
        {
        }
        await load.CancelAsync();
        try
        {
            await background;
        }
        catch (OperationCanceledException)
        {
        }

        var metricsAfter = await api.MetricsAsync(ct);
        var lagBuckets = metricsAfter.Where(m => m.Key.StartsWith("trellis_fleet_index_lag_seconds_bucket", StringComparison.Ordinal))
            .ToDictionary(m => m.Key["trellis_fleet_index_lag_seconds_bucket".Length..], m => m.Value - metricsBefore.GetValueOrDefault(m.Key));
        var gcPause = metricsAfter.GetValueOrDefault("dotnet_gc_pause_time_seconds_total") - metricsBefore.GetValueOrDefault("dotnet_gc_pause_time_seconds_total");
        var gen2 = metricsAfter.GetValueOrDefault("dotnet_gc_collections_total{gc_heap_generation=\"gen2\"}") - metricsBefore.GetValueOrDefault("dotnet_gc_collections_total{gc_heap_generation=\"gen2\"}");

        // 4. Search latency on the settled index, and the registry's SQLite attribute filter beside it.
        var queries = new (string Name, string Path, Func<int, string> Body)[]
        {
            ("search one serial", "/indices/search", i => $$"""{"queryString":"attributes.serial:SN-{{(i * 7919) % count:D7}}"}"""),
            ("search site AND temp range", "/indices/search", i => $$"""{"queryString":"attributes.site:site-{{i % 50}} AND shadow.reported.temp>{{29.5 + ((i % 5) / 10.0)}}","maxResults":100}"""),
            ("search name prefix", "/indices/search", i => $$"""{"queryString":"thingName:dev-0{{i % 10}}12*"}"""),
            ("statistics temp, whole fleet", "/indices/statistics", _ => """{"queryString":"*","aggregationField":"shadow.reported.temp"}"""),
            ("percentiles temp, whole fleet", "/indices/percentiles", _ => """{"queryString":"thingName:*","aggregationField":"shadow.reported.temp"}"""),
            ("buckets site, whole fleet", "/indices/buckets", _ => """{"queryString":"*","aggregationField":"attributes.site","bucketsAggregationType":{"termsAggregation":{"maxBuckets":50}}}"""),
            ("cardinality serial, whole fleet", "/indices/cardinality", _ => """{"queryString":"*","aggregationField":"attributes.serial"}"""),
        };
        var results = new Dictionary<string, object?>();
        foreach (var (name, path, body) in queries)
        {
            results[name] = await LatencyAsync(samples, i => api.CallAsync("POST", path, string.Empty, body(i), ct));
        }

        results["baseline: ListThings attribute filter (SQLite)"] = await LatencyAsync(Math.Min(samples, 50), i =>
            api.CallAsync("GET", "/things", $"attributeName=serial&attributeValue=SN-{(i * 7919) % count:D7}&maxResults=10", string.Empty, ct));

        freshness.Sort();
        afterAccept.Sort();
        emit(new Dictionary<string, object?>
        {
            ["scenario"] = "index",
            ["broker"] = "trellis",
            ["things"] = count,
            ["createThingsPerSecond"] = Math.Round(createRate),
            ["shadowUpdatesSeconds"] = Math.Round(shadowSeconds, 1),
            ["allShadowsSearchableAfterSeconds"] = Math.Round(indexedAfter, 1),
            ["freshnessRatePerSecond"] = rate,
            ["freshnessProbes"] = freshness.Count,
            ["freshnessNotFoundWithin60s"] = lost,
            ["freshnessP50Ms"] = Math.Round(Percentile(freshness, 0.50), 1),
            ["freshnessP99Ms"] = Math.Round(Percentile(freshness, 0.99), 1),
            ["freshnessMaxMs"] = Math.Round(Percentile(freshness, 1.0), 1),
            ["acceptedToSearchableProbes"] = afterAccept.Count,
            ["acceptedToSearchableP50Ms"] = Math.Round(Percentile(afterAccept, 0.50), 1),
            ["acceptedToSearchableP99Ms"] = Math.Round(Percentile(afterAccept, 0.99), 1),
            ["latencyMs"] = results,
            ["serverLagBucketsDuringFreshness"] = lagBuckets,
            ["gcPauseSecondsDuringFreshness"] = Math.Round(gcPause, 3),
            ["gen2CollectionsDuringFreshness"] = gen2,
            ["rssMiB"] = broker.RssKiB() / 1024,
        });
    }

    private static string Name(int i) => "dev-" + i.ToString("D6", CultureInfo.InvariantCulture);

    private static string Temperature(int i, int round) => string.Create(CultureInfo.InvariantCulture, $$$$"""{"state":{"reported":{"temp":{{{{((i * 37) + (round * 11)) % 300 / 10.0}}}},"battery":{{{{(i + round) % 100}}}}}}}""");

    private static async Task<Dictionary<string, double>> LatencyAsync(int samples, Func<int, Task<JsonNode>> call)
    {
        await call(0); // warm
        var times = new List<double>();
        for (var i = 1; i <= samples; i++)
        {
            var start = Stopwatch.GetTimestamp();
            await call(i);
            times.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }

        times.Sort();
        return new Dictionary<string, double> { ["p50"] = Math.Round(Percentile(times, 0.5), 2), ["p99"] = Math.Round(Percentile(times, 0.99), 2) };
    }

    private static double Percentile(List<double> sorted, double p) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, Math.Max(0, (int)Math.Ceiling(p * sorted.Count) - 1))];

    private static string Get(string[] args, string name, string fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }

    /// <summary>SigV4-signed calls to the management API; a refusal is an exception naming it.</summary>
    private sealed class Api(string endpoint, string keyId, string secret) : IDisposable
    {
        private readonly HttpClient _http = new(new SocketsHttpHandler { MaxConnectionsPerServer = 64 });
        private readonly Uri _endpoint = new(endpoint);

        public async Task<JsonNode> CallAsync(string method, string path, string query, string body, CancellationToken ct)
        {
            var bytes = Encoding.UTF8.GetBytes(body);
            var hostHeader = _endpoint.IsDefaultPort ? _endpoint.Host : $"{_endpoint.Host}:{_endpoint.Port}";
            var headers = SigV4Signer.Sign(method, hostHeader, path, query, bytes, keyId, secret, "us-east-1", "iot", DateTimeOffset.UtcNow);
            using var request = new HttpRequestMessage(new HttpMethod(method), new Uri(_endpoint, path + (query.Length > 0 ? "?" + query : string.Empty)));
            if (bytes.Length > 0)
            {
                request.Content = new ByteArrayContent(bytes);
                request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
            }

            foreach (var (header, value) in headers)
            {
                request.Headers.TryAddWithoutValidation(header, value);
            }

            using var response = await _http.SendAsync(request, ct);
            var text = await response.Content.ReadAsStringAsync(ct);
            if (!response.IsSuccessStatusCode && (int)response.StatusCode != 409)
            {
                throw new InvalidOperationException($"{method} {path} answered {(int)response.StatusCode}: {text}");
            }

            return JsonNode.Parse(text.Length == 0 ? "{}" : text)!;
        }

        /// <summary>The server's /metrics (unsigned) as name{labels} → value.</summary>
        public async Task<Dictionary<string, double>> MetricsAsync(CancellationToken ct)
        {
            return PrometheusSamples.Parse(await _http.GetStringAsync(new Uri(_endpoint, "/metrics"), ct));
        }

        public void Dispose() => _http.Dispose();
    }

    /// <summary>MQTT connections that publish shadow updates at QoS 0, paced to a rate.</summary>
    private sealed class Loaders(string host, int port, int connections) : IDisposable
    {
        private static readonly byte[] ProbeMarker = "\"probe\":"u8.ToArray();
        private readonly Socket[] _sockets = new Socket[connections];

        /// <summary>When each probe's /accepted reply arrived (marker → Stopwatch timestamp).</summary>
        public System.Collections.Concurrent.ConcurrentDictionary<int, long> Accepted { get; } = new();
        private readonly SemaphoreSlim[] _gates = [.. Enumerable.Range(0, connections).Select(_ => new SemaphoreSlim(1, 1))];

        public async Task ConnectAsync(CancellationToken ct)
        {
            for (var i = 0; i < _sockets.Length; i++)
            {
                var socket = _sockets[i] = await MqttWire.OpenAsync(host, port, "index-loader-" + i.ToString(CultureInfo.InvariantCulture), ct);

                // The shadow service answers the requester directly (…/accepted): read and drop it.
                _ = Task.Run(async () =>
                {
                    var buffer = new byte[64 * 1024];
                    try
                    {
                        int read;
                        while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None, ct)) > 0)
                        {
                            // A probe's /accepted reply: note when the shadow service accepted it (a
                            // marker split across two reads is missed, and counted as not seen).
                            var span = buffer.AsSpan(0, read);
                            for (var at = span.IndexOf(ProbeMarker); at >= 0; at = span.IndexOf(ProbeMarker))
                            {
                                span = span[(at + ProbeMarker.Length)..];
                                var digits = 0;
                                while (digits < span.Length && char.IsAsciiDigit((char)span[digits]))
                                {
                                    digits++;
                                }

                                if (digits > 0 && int.TryParse(span[..digits], CultureInfo.InvariantCulture, out var marker))
                                {
                                    Accepted.TryAdd(marker, Stopwatch.GetTimestamp());
                                }
                            }
                        }
                    }
                    catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
                    {
                    }
                }, ct);
            }
        }

        public async Task SendAsync(IEnumerable<(int Thing, string Payload)> updates, int rate, CancellationToken ct)
        {
            var start = Stopwatch.GetTimestamp();
            var sent = 0;
            foreach (var (thing, payload) in updates)
            {
                await PublishAsync(thing, payload, ct);
                if (++sent % 100 == 0)
                {
                    var due = sent * 1000.0 / rate;
                    var ahead = due - Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                    if (ahead > 1)
                    {
                        await Task.Delay(TimeSpan.FromMilliseconds(ahead), ct);
                    }
                }
            }
        }

        public async Task PublishAsync(int thing, string payload, CancellationToken ct)
        {
            var topic = Encoding.UTF8.GetBytes($"$aws/things/{Name(thing)}/shadow/update");
            var bytes = Encoding.UTF8.GetBytes(payload);
            var body = new byte[2 + topic.Length + bytes.Length];
            body[0] = (byte)(topic.Length >> 8);
            body[1] = (byte)topic.Length;
            topic.CopyTo(body, 2);
            bytes.CopyTo(body, 2 + topic.Length);
            var frame = MqttWire.Frame(0x30, body);
            var k = thing % _sockets.Length;
            await _gates[k].WaitAsync(ct);
            try
            {
                await _sockets[k].SendAsync(frame, SocketFlags.None, ct);
            }
            finally
            {
                _gates[k].Release();
            }
        }

        public void Dispose()
        {
            foreach (var socket in _sockets)
            {
                socket?.Dispose();
            }

            foreach (var gate in _gates)
            {
                gate.Dispose();
            }
        }
    }
}
