using System.Diagnostics;
using System.Globalization;
using MQTTnet;
using MQTTnet.Protocol;

namespace Trellis.LoadGen;

/// <summary>
/// Edge gateway figures (scenario gateway, docs/benchmarks.md): leaves publish QoS 1 to a
/// gateway's local listener (Trellis's <c>trellis gateway</c>, or Mosquitto as a bridge); the
/// upstream server's own counter of received messages says what arrived.
///   --phase throughput: every leaf publishes as fast as its in-flight window allows for --seconds;
///     reports leaf messages acknowledged per second and upstream arrivals per second (until all
///     acknowledged messages have arrived).
///   --phase outage: leaves publish at --rate msg/s in total for --seconds while upstream is down
///     (the script stopped it); reports how many were acknowledged.
///   --phase drain: waits until upstream has received --expect messages; reports the drain rate.
/// </summary>
internal static class GatewayBench
{
    public static async Task RunAsync(string[] args, string name, Action<Dictionary<string, object?>> emit, CancellationToken ct)
    {
        string Get(string option, string fallback)
        {
            var i = Array.IndexOf(args, option);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
        }

        var phase = Get("--phase", "throughput");
        var leafPort = int.Parse(Get("--leaf-port", "1884"), CultureInfo.InvariantCulture);
        var metrics = Get("--upstream-metrics", "http://127.0.0.1:8080/metrics");
        var seconds = double.Parse(Get("--seconds", "10"), CultureInfo.InvariantCulture);
        var credentials = Get("--credentials", string.Empty) is { Length: > 0 } file
            ? (await File.ReadAllLinesAsync(file, ct)).Where(l => l.Length > 0).Select(l => l.Split(' ')).Select(p => (Thing: p[0], Password: (string?)p[1])).ToList()
            : Enumerable.Range(0, int.Parse(Get("--leaves", "20"), CultureInfo.InvariantCulture)).Select(i => (Thing: $"gwbench-leaf-{i:D2}", Password: (string?)null)).ToList();
        switch (phase)
        {
            case "throughput":
                {
                    await using var watcher = await WatchAsync(metrics, ct);
                    var acked = 0L;
                    var clock = Stopwatch.StartNew();
                    var deadline = TimeSpan.FromSeconds(seconds);
                    var window = int.Parse(Get("--in-flight", "32"), CultureInfo.InvariantCulture);
                    await Task.WhenAll(credentials.Select(async leaf =>
                    {
                        using var client = await ConnectLeafAsync(leafPort, leaf.Thing, leaf.Password, ct);
                        var payload = new byte[64];
                        var inflight = new Queue<Task<MqttClientPublishResult>>();
                        while (clock.Elapsed < deadline)
                        {
                            inflight.Enqueue(client.PublishAsync(Message($"devices/{leaf.Thing}/telemetry", payload), ct));
                            if (inflight.Count >= window && (await inflight.Dequeue()).IsSuccess)
                            {
                                Interlocked.Increment(ref acked);
                            }
                        }

                        while (inflight.Count > 0)
                        {
                            if ((await inflight.Dequeue()).IsSuccess)
                            {
                                Interlocked.Increment(ref acked);
                            }
                        }
                    }));
                    var publishSeconds = clock.Elapsed.TotalSeconds;
                    var arrived = await watcher.WaitForAsync(acked, TimeSpan.FromSeconds(120), ct);
                    emit(new Dictionary<string, object?>
                    {
                        ["scenario"] = "gateway-throughput",
                        ["broker"] = name,
                        ["leaves"] = credentials.Count,
                        ["acknowledged"] = acked,
                        ["acknowledgedPerSecond"] = Math.Round(acked / publishSeconds),
                        ["arrived"] = arrived,
                        ["forwardedPerSecond"] = Math.Round(arrived / Math.Max(0.001, watcher.LastArrival.TotalSeconds)),
                    });
                    break;
                }

            case "outage":
                {
                    var rate = double.Parse(Get("--rate", "1000"), CultureInfo.InvariantCulture);
                    var perLeaf = rate / credentials.Count;
                    var acked = 0L;
                    var clock = Stopwatch.StartNew();
                    await Task.WhenAll(credentials.Select(async leaf =>
                    {
                        using var client = await ConnectLeafAsync(leafPort, leaf.Thing, leaf.Password, ct);
                        var payload = new byte[64];
                        var sent = 0L;
                        var inflight = new Queue<Task<MqttClientPublishResult>>();
                        while (clock.Elapsed.TotalSeconds < seconds)
                        {
                            var due = (long)(clock.Elapsed.TotalSeconds * perLeaf);
                            for (; sent < due; sent++)
                            {
                                inflight.Enqueue(client.PublishAsync(Message($"devices/{leaf.Thing}/telemetry", payload), ct));
                            }

                            while (inflight.Count > 0 && inflight.Peek().IsCompleted)
                            {
                                if ((await inflight.Dequeue()).IsSuccess)
                                {
                                    Interlocked.Increment(ref acked);
                                }
                            }

                            await Task.Delay(5, ct);
                        }

                        while (inflight.Count > 0)
                        {
                            if ((await inflight.Dequeue()).IsSuccess)
                            {
                                Interlocked.Increment(ref acked);
                            }
                        }
                    }));
                    emit(new Dictionary<string, object?> { ["scenario"] = "gateway-outage", ["broker"] = name, ["seconds"] = seconds, ["offeredPerSecond"] = rate, ["acknowledged"] = acked });
                    break;
                }

            case "drain":
                {
                    var expect = long.Parse(Get("--expect", "0"), CultureInfo.InvariantCulture);
                    await using var watcher = await WatchAsync(metrics, ct);
                    var arrived = await watcher.WaitForAsync(expect, TimeSpan.FromSeconds(double.Parse(Get("--timeout", "900"), CultureInfo.InvariantCulture)), ct);
                    var span = (watcher.LastArrival - watcher.FirstArrival).TotalSeconds;
                    emit(new Dictionary<string, object?>
                    {
                        ["scenario"] = "gateway-drain",
                        ["broker"] = name,
                        ["expected"] = expect,
                        ["arrived"] = arrived,
                        ["firstArrivalSeconds"] = Math.Round(watcher.FirstArrival.TotalSeconds, 2),
                        ["drainSeconds"] = Math.Round(span, 2),
                        ["drainPerSecond"] = Math.Round(arrived / Math.Max(0.001, span)),
                    });
                    break;
                }

            default:
                throw new ArgumentException($"--phase {phase}: throughput, outage or drain");
        }
    }

    private static MqttApplicationMessage Message(string topic, byte[] payload) =>
        new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(payload).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build();

    private static async Task<IMqttClient> ConnectLeafAsync(int port, string thing, string? password, CancellationToken ct)
    {
        var client = new MqttClientFactory().CreateMqttClient();
        var options = new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", port).WithClientId(thing).WithTimeout(TimeSpan.FromSeconds(30));
        if (password is not null)
        {
            options.WithCredentials(thing, password);
        }

        await client.ConnectAsync(options.Build(), ct);
        return client;
    }

    private static async Task<Watcher> WatchAsync(string metrics, CancellationToken ct)
    {
        var watcher = new Watcher(metrics);
        await watcher.StartAsync(ct);
        return watcher;
    }

    /// <summary>
    /// Counts what reaches the upstream server from its own metrics (PUBLISH packets received from
    /// clients, polled every 50 ms at /metrics): only the gateway publishes there during a run, and
    /// a subscriber would measure its own client library instead.
    /// </summary>
    private sealed class Watcher(string metrics) : IAsyncDisposable
    {
        private readonly HttpClient _http = new();
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly CancellationTokenSource _stop = new();
        private long _baseline;
        private long _count;
        private Task? _polling;

        public TimeSpan FirstArrival { get; private set; }

        public TimeSpan LastArrival { get; private set; }

        public async Task StartAsync(CancellationToken ct)
        {
            _baseline = await ReceivedAsync(ct);
            _polling = PollAsync(_stop.Token);
        }

        public async Task<long> WaitForAsync(long count, TimeSpan timeout, CancellationToken ct)
        {
            var quiet = Stopwatch.StartNew();
            var last = -1L;
            while (Interlocked.Read(ref _count) < count && quiet.Elapsed < timeout)
            {
                await Task.Delay(100, ct);
                var now = Interlocked.Read(ref _count);
                if (now != last)
                {
                    last = now;
                    quiet.Restart();
                }
            }

            return Math.Min(count, Interlocked.Read(ref _count));
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            if (_polling is not null)
            {
                await _polling.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }

            _http.Dispose();
            _stop.Dispose();
        }

        private async Task PollAsync(CancellationToken ct)
        {
            while (!ct.IsCancellationRequested)
            {
                try
                {
                    var n = await ReceivedAsync(ct) - _baseline;
                    var before = Interlocked.Exchange(ref _count, n);
                    if (n > before)
                    {
                        if (before == 0)
                        {
                            FirstArrival = _clock.Elapsed;
                        }

                        LastArrival = _clock.Elapsed;
                    }
                }
                catch (HttpRequestException)
                {
                    // upstream not (yet) there
                }

                await Task.Delay(50, ct).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }

        private async Task<long> ReceivedAsync(CancellationToken ct)
        {
            var text = await _http.GetStringAsync(metrics, ct);
            return (long)PrometheusSamples.Parse(text).GetValueOrDefault("trellis_broker_messages_received_total");
        }
    }
}
