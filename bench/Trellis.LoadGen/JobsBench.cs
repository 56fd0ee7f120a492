using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Trellis.Security.SigV4;

namespace Trellis.LoadGen;

/// <summary>
/// The jobs rollout figure: THINGS devices connected and subscribed to their
/// <c>$aws/things/{thing}/jobs/notify-next</c>, one CreateJob on the group that holds them all (no
/// rollout limit: every device is in the first window). Reports how long CreateJob took to accept
/// and, per device, the time from the CreateJob request to its notify-next (p50, p99, max).
/// </summary>
internal static class JobsBench
{
    public static async Task RunAsync(string[] args, string host, int port, BrokerProcess broker, Action<Dictionary<string, object?>> emit, CancellationToken ct)
    {
        var api = Get(args, "--api", "http://127.0.0.1:8080");
        var keyId = Get(args, "--key-id", string.Empty);
        var secret = Get(args, "--secret", string.Empty);
        var prefix = Get(args, "--thing-prefix", "job-dev-");
        var group = Get(args, "--group", "job-fleet");
        var count = int.Parse(Get(args, "--things", "10000"), System.Globalization.CultureInfo.InvariantCulture);

        var devices = new JobDevice[count];
        for (var start = 0; start < count; start += 200)
        {
            await Task.WhenAll(Enumerable.Range(start, Math.Min(200, count - start)).Select(async i =>
            {
                var thing = prefix + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
                var socket = await MqttWire.OpenAsync(host, port, thing, ct);
                await MqttWire.SubscribeAsync(socket, $"$aws/things/{thing}/jobs/notify-next", 1, ct);
                devices[i] = new JobDevice(socket);
            }));
        }

        using var readers = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var reading = devices.Select(d => Task.Run(() => d.RunReaderAsync(readers.Token), ct)).ToArray();
        var jobId = "bench-" + Guid.NewGuid().ToString("N")[..8];
        var body = new JsonObject
        {
            ["targets"] = new JsonArray($"arn:aws:iot:us-east-1:000000000000:thinggroup/{group}"),
            ["document"] = """{"operation":"install","version":"2.0.0"}""",
        }.ToJsonString();
        // The load generator's own first request (its HTTP connection, the signer's first use) is not
        // the server's work: one signed ListJobs opens the connection first. The server's CreateJob
        // path itself stays cold, as after a restart.
        using var http = new HttpClient();
        await SendAsync(http, api, "GET", "/jobs", string.Empty, keyId, secret, ct);
        broker.CpuNanoseconds(); // from here
        var t0 = Stopwatch.GetTimestamp();
        var answer = await SendAsync(http, api, "PUT", "/jobs/" + jobId, body, keyId, secret, ct);
        var acceptedMs = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        if (answer["jobId"]?.GetValue<string>() != jobId)
        {
            throw new InvalidOperationException("CreateJob failed: " + answer.ToJsonString());
        }

        var deadline = Stopwatch.GetTimestamp() + (Stopwatch.Frequency * 60);
        while (devices.Any(d => d.NotifiedAt == 0) && Stopwatch.GetTimestamp() < deadline)
        {
            await Task.Delay(50, ct);
        }

        var cpuMs = broker.CpuNanoseconds() / 1e6;
        var latencies = devices.Where(d => d.NotifiedAt > 0).Select(d => (d.NotifiedAt - t0) * 1000.0 / Stopwatch.Frequency).Order().ToArray();
        double Percentile(double p) => latencies.Length == 0 ? double.NaN : latencies[Math.Min(latencies.Length - 1, (int)Math.Ceiling(p * latencies.Length) - 1)];
        emit(new Dictionary<string, object?>
        {
            ["scenario"] = "jobs",
            ["broker"] = "trellis",
            ["things"] = count,
            ["createJobMs"] = Math.Round(acceptedMs, 1),
            ["notified"] = latencies.Length,
            ["notifyP50Ms"] = Math.Round(Percentile(0.50), 1),
            ["notifyP99Ms"] = Math.Round(Percentile(0.99), 1),
            ["notifyMaxMs"] = Math.Round(Percentile(1.0), 1),
            ["serverCpuMs"] = Math.Round(cpuMs, 0),
            ["rssMiB"] = broker.RssKiB() / 1024,
        });
        await readers.CancelAsync();
        foreach (var device in devices)
        {
            device.Dispose();
        }

        await Task.WhenAll(reading);
    }

    internal static async Task<JsonNode> SendAsync(HttpClient http, string api, string method, string path, string body, string keyId, string secret, CancellationToken ct)
    {
        var endpoint = new Uri(api);
        var bytes = Encoding.UTF8.GetBytes(body);
        var hostHeader = endpoint.IsDefaultPort ? endpoint.Host : $"{endpoint.Host}:{endpoint.Port}";
        var headers = SigV4Signer.Sign(method, hostHeader, path, string.Empty, bytes, keyId, secret, "us-east-1", "iot", DateTimeOffset.UtcNow);
        using var request = new HttpRequestMessage(new HttpMethod(method), new Uri(endpoint, path)) { Content = new ByteArrayContent(bytes) };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        foreach (var (header, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(header, value);
        }

        using var response = await http.SendAsync(request, ct);
        return JsonNode.Parse(await response.Content.ReadAsStringAsync(ct))!;
    }

    private static string Get(string[] args, string name, string fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }

    /// <summary>A device that notes when its notify-next arrived.</summary>
    private sealed class JobDevice(Socket socket) : PublishReader(socket, 16 * 1024, preallocateAcks: true), IDisposable
    {
        private static readonly byte[] NotifyNext = "/jobs/notify-next"u8.ToArray();

        public long NotifiedAt;

        public void Dispose() => Socket.Dispose();

        protected override void OnPublish(ReadOnlySpan<byte> topic, ReadOnlySpan<byte> payload, long now)
        {
            if (topic.EndsWith(NotifyNext) && NotifiedAt == 0)
            {
                NotifiedAt = now;
            }
        }
    }
}
