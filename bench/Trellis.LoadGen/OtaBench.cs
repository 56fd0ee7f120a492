using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;

namespace Trellis.LoadGen;

/// <summary>
/// Firmware update figures. <c>--part download</c>: CONNECTIONS clients fetch 1 MiB ranges of one
/// image over HTTPS for SECONDS (any HTTPS server: Trellis's pre-signed link, or nginx serving the
/// same file as the baseline), reporting MB/s and the server's CPU. <c>--part fleet</c>: THINGS
/// devices run a whole update job (notify-next → start-next → download the image over HTTPS →
/// SUCCEEDED), reporting the wall time from CreateJob to the last SUCCEEDED, downloads/s, the
/// server's CPU and memory.
/// </summary>
internal static class OtaBench
{
    public static Task RunAsync(string[] args, string name, string host, int port, BrokerProcess broker, Action<Dictionary<string, object?>> emit, CancellationToken ct) =>
        Get(args, "--part", "download") == "fleet" ? FleetAsync(args, host, port, broker, emit, ct) : DownloadAsync(args, name, broker, emit, ct);

    private static HttpClient Client(string caPath, int connections)
    {
        using var ca = X509CertificateLoader.LoadCertificateFromFile(caPath);
        var trusted = new X509Certificate2Collection(X509CertificateLoader.LoadCertificate(ca.RawData));
        return new HttpClient(new SocketsHttpHandler
        {
            MaxConnectionsPerServer = connections,
            SslOptions =
            {
                CertificateChainPolicy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, CustomTrustStore = { trusted[0] }, RevocationMode = X509RevocationMode.NoCheck },
            },
        })
        { Timeout = TimeSpan.FromMinutes(5) };
    }

    private static async Task DownloadAsync(string[] args, string name, BrokerProcess server, Action<Dictionary<string, object?>> emit, CancellationToken ct)
    {
        var url = Get(args, "--url", string.Empty);
        var size = long.Parse(Get(args, "--size", "0"), System.Globalization.CultureInfo.InvariantCulture);
        var connections = int.Parse(Get(args, "--connections", "16"), System.Globalization.CultureInfo.InvariantCulture);
        var seconds = double.Parse(Get(args, "--seconds", "15"), System.Globalization.CultureInfo.InvariantCulture);
        const int Chunk = 1 << 20;
        using var http = Client(Get(args, "--ca", "ca.pem"), connections);
        long bytes = 0;
        long requests = 0;
        var warm = await http.GetByteArrayAsync(url, ct); // handshake, JIT
        if (size > 0 && warm.Length != size)
        {
            throw new InvalidOperationException($"{url} gave {warm.Length} bytes, not {size}");
        }

        server.CpuNanoseconds();
        var t0 = Stopwatch.GetTimestamp();
        var end = t0 + (long)(seconds * Stopwatch.Frequency);
        await Task.WhenAll(Enumerable.Range(0, connections).Select(async c =>
        {
            var buffer = new byte[1 << 16];
            var random = new Random(c);
            while (Stopwatch.GetTimestamp() < end)
            {
                var from = random.NextInt64(0, Math.Max(1, (warm.Length - Chunk) / Chunk)) * Chunk;
                using var request = new HttpRequestMessage(HttpMethod.Get, url);
                request.Headers.Range = new RangeHeaderValue(from, from + Chunk - 1);
                using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
                if (response.StatusCode != HttpStatusCode.PartialContent)
                {
                    throw new InvalidOperationException($"range request: HTTP {(int)response.StatusCode}");
                }

                await using var body = await response.Content.ReadAsStreamAsync(ct);
                int n;
                while ((n = await body.ReadAsync(buffer, ct)) > 0)
                {
                    Interlocked.Add(ref bytes, n);
                }

                Interlocked.Increment(ref requests);
            }
        }));
        var elapsed = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        var cpu = server.CpuNanoseconds() / 1e9;
        emit(new Dictionary<string, object?>
        {
            ["scenario"] = "ota-download",
            ["broker"] = name,
            ["connections"] = connections,
            ["rangeBytes"] = Chunk,
            ["requests"] = requests,
            ["mbPerSecond"] = Math.Round(bytes / elapsed / 1e6, 1),
            ["serverCpuPercent"] = Math.Round(cpu / elapsed * 100, 0),
            ["rssMiB"] = server.RssKiB() / 1024,
        });
    }

    private static async Task FleetAsync(string[] args, string host, int port, BrokerProcess broker, Action<Dictionary<string, object?>> emit, CancellationToken ct)
    {
        var api = Get(args, "--api", "http://127.0.0.1:8080");
        var keyId = Get(args, "--key-id", string.Empty);
        var secret = Get(args, "--secret", string.Empty);
        var prefix = Get(args, "--thing-prefix", "ota-dev-");
        var group = Get(args, "--group", "ota-fleet");
        var firmware = Get(args, "--firmware", "bench.bin");
        var size = long.Parse(Get(args, "--size", "1048576"), System.Globalization.CultureInfo.InvariantCulture);
        var count = int.Parse(Get(args, "--things", "10000"), System.Globalization.CultureInfo.InvariantCulture);
        var concurrency = int.Parse(Get(args, "--concurrency", "64"), System.Globalization.CultureInfo.InvariantCulture);
        using var http = Client(Get(args, "--ca", "ca.pem"), concurrency);

        var devices = new OtaDevice[count];
        var ready = System.Threading.Channels.Channel.CreateUnbounded<OtaDevice>();
        for (var start = 0; start < count; start += 200)
        {
            await Task.WhenAll(Enumerable.Range(start, Math.Min(200, count - start)).Select(async i =>
            {
                var thing = prefix + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
                var socket = await MqttWire.OpenAsync(host, port, thing, ct);
                await MqttWire.SubscribeAsync(socket, $"$aws/things/{thing}/jobs/notify-next", 0, ct);
                devices[i] = new OtaDevice(socket, thing, ready.Writer);
            }));
        }

        using var readers = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var reading = devices.Select(d => Task.Run(() => d.RunReaderAsync(readers.Token), ct)).ToArray();
        var jobId = "ota-" + Guid.NewGuid().ToString("N")[..8];
        var document = new JsonObject
        {
            ["afr_ota"] = new JsonObject
            {
                ["protocols"] = new JsonArray("HTTP"),
                ["files"] = new JsonArray(new JsonObject { ["filepath"] = firmware, ["filesize"] = size, ["update_data_url"] = $"${{aws:iot:s3-presigned-url:firmware/{firmware}}}" }),
            },
        };
        var body = new JsonObject { ["targets"] = new JsonArray($"arn:aws:iot:us-east-1:000000000000:thinggroup/{group}"), ["document"] = document.ToJsonString() }.ToJsonString();
        broker.CpuNanoseconds();
        var peakRss = 0L;
        var t0 = Stopwatch.GetTimestamp();
        using var control = new HttpClient();
        var answer = await JobsBench.SendAsync(control, api, "PUT", "/jobs/" + jobId, body, keyId, secret, ct);
        if (answer["jobId"]?.GetValue<string>() != jobId)
        {
            throw new InvalidOperationException("CreateJob failed: " + answer.ToJsonString());
        }

        long downloaded = 0;
        var failures = new ConcurrentQueue<string>();
        var workers = Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            var buffer = new byte[1 << 16];
            await foreach (var device in ready.Reader.ReadAllAsync(ct))
            {
                try
                {
                    var url = await device.StartNextAsync(ct);
                    using var response = await http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, ct);
                    await using var stream = await response.Content.ReadAsStreamAsync(ct);
                    long got = 0;
                    int n;
                    while ((n = await stream.ReadAsync(buffer, ct)) > 0)
                    {
                        got += n;
                    }

                    if (got != size)
                    {
                        throw new InvalidOperationException($"{device.Thing}: {got} bytes (HTTP {(int)response.StatusCode})");
                    }

                    Interlocked.Add(ref downloaded, got);
                    await device.SucceedAsync(jobId, ct);
                }
                catch (Exception e) when (e is InvalidOperationException or HttpRequestException or IOException or TimeoutException)
                {
                    failures.Enqueue(e.Message);
                    device.Done.TrySetResult();
                }
            }
        }, ct)).ToArray();

        var all = Task.WhenAll(devices.Select(d => d.Done.Task));
        while (!all.IsCompleted && Stopwatch.GetElapsedTime(t0) < TimeSpan.FromMinutes(10))
        {
            peakRss = Math.Max(peakRss, broker.RssKiB());
            await Task.WhenAny(all, Task.Delay(500, ct));
        }

        var wall = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        var cpu = broker.CpuNanoseconds() / 1e9;
        ready.Writer.Complete();
        await readers.CancelAsync();
        emit(new Dictionary<string, object?>
        {
            ["scenario"] = "ota-fleet",
            ["broker"] = "trellis",
            ["things"] = count,
            ["imageBytes"] = size,
            ["succeeded"] = devices.Count(d => d.Succeeded),
            ["failures"] = failures.Count,
            ["firstFailure"] = failures.FirstOrDefault(),
            ["wallSeconds"] = Math.Round(wall, 1),
            ["downloadsPerSecond"] = Math.Round(devices.Count(d => d.Succeeded) / wall, 0),
            ["mbPerSecond"] = Math.Round(downloaded / wall / 1e6, 1),
            ["serverCpuSeconds"] = Math.Round(cpu, 1),
            ["serverCpuPercent"] = Math.Round(cpu / wall * 100, 0),
            ["peakRssMiB"] = peakRss / 1024,
        });
        foreach (var device in devices)
        {
            device.Dispose();
        }

        await Task.WhenAll(reading);
    }

    private static string Get(string[] args, string name, string fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }

    /// <summary>A device that runs its job: start-next, download, SUCCEEDED (QoS 0 requests: the reader never writes).</summary>
    private sealed class OtaDevice(Socket socket, string thing, System.Threading.Channels.ChannelWriter<OtaDevice> ready) : PublishReader(socket, 16 * 1024), IDisposable
    {
        private readonly byte[] _startAccepted = Encoding.UTF8.GetBytes($"$aws/things/{thing}/jobs/start-next/accepted");
        private readonly byte[] _notifyNext = Encoding.UTF8.GetBytes($"$aws/things/{thing}/jobs/notify-next");
        private readonly TaskCompletionSource<string> _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _updated = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _notified;

        public string Thing => thing;

        public bool Succeeded { get; private set; }

        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Dispose() => Socket.Dispose();

        public async Task<string> StartNextAsync(CancellationToken ct)
        {
            await Socket.SendAsync(Publish($"$aws/things/{thing}/jobs/start-next", "{}"), ct);
            return await _started.Task.WaitAsync(TimeSpan.FromSeconds(60), ct);
        }

        public async Task SucceedAsync(string jobId, CancellationToken ct)
        {
            await Socket.SendAsync(Publish($"$aws/things/{thing}/jobs/{jobId}/update", """{"status":"SUCCEEDED"}"""), ct);
            await _updated.Task.WaitAsync(TimeSpan.FromSeconds(60), ct);
            Succeeded = true;
            Done.TrySetResult();
        }

        protected override void OnPublish(ReadOnlySpan<byte> topic, ReadOnlySpan<byte> payload, long now)
        {
            if (topic.SequenceEqual(_notifyNext))
            {
                if (payload.IndexOf("\"execution\""u8) >= 0 && Interlocked.Exchange(ref _notified, 1) == 0)
                {
                    ready.TryWrite(this);
                }
            }
            else if (topic.SequenceEqual(_startAccepted))
            {
                var url = JsonNode.Parse(payload)?["execution"]?["jobDocument"]?["afr_ota"]?["files"]?[0]?["update_data_url"]?.GetValue<string>();
                _started.TrySetResult(url ?? throw new InvalidOperationException("start-next/accepted without a document link"));
            }
            else if (topic.EndsWith("/update/accepted"u8))
            {
                _updated.TrySetResult();
            }
        }

        private static byte[] Publish(string topic, string payload)
        {
            var t = Encoding.UTF8.GetBytes(topic);
            var p = Encoding.UTF8.GetBytes(payload);
            var body = new byte[2 + t.Length + p.Length];
            body[0] = (byte)(t.Length >> 8);
            body[1] = (byte)t.Length;
            t.CopyTo(body, 2);
            p.CopyTo(body, 2 + t.Length);
            return MqttWire.Frame(0x30, body);
        }
    }
}
