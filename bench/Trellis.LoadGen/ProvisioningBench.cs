using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MQTTnet;
using Trellis.Device;

namespace Trellis.LoadGen;

/// <summary>
/// Provisioning and connect benchmarks, with the device SDK (MQTTnet) as a real device would:
/// <list type="bullet">
/// <item><c>provision</c>: devices holding only the claim certificate each connect over TLS, get
/// a key pair and certificate, register through a template, disconnect and connect again with their
/// own certificate. Reports end-to-end devices/s and per-device latency; writes each device's
/// certificate and key for the connect benchmark.</item>
/// <item><c>connect</c>: N devices connect (and stay connected) with a device token on plain TCP,
/// or with their certificate over TLS, C at a time. Reports connects/s and CONNACK latency.</item>
/// </list>
/// </summary>
internal static class ProvisioningBench
{
    public static async Task ProvisionAsync(string[] args, BrokerProcess broker, Action<Dictionary<string, object?>> emit, CancellationToken ct)
    {
        var host = Get(args, "--host", "127.0.0.1");
        var port = int.Parse(Get(args, "--port", "8883"), CultureInfo.InvariantCulture);
        var devices = int.Parse(Get(args, "--devices", "1000"), CultureInfo.InvariantCulture);
        var concurrency = int.Parse(Get(args, "--concurrency", "16"), CultureInfo.InvariantCulture);
        var template = Get(args, "--template", "bench-fleet");
        var prefix = Get(args, "--serial-prefix", "sn");
        var outDir = Directory.CreateDirectory(Get(args, "--out", "devices")).FullName;
        var keys = Get(args, "--keys", "server");
        var ca = X509CertificateLoader.LoadCertificateFromFile(Get(args, "--ca", "ca.pem"));
        var claim = X509Certificate2.CreateFromPemFile(Get(args, "--claim-cert", "claim.pem"), Get(args, "--claim-key", "claim.key"));

        var latencies = new ConcurrentBag<double>();
        var errors = new ConcurrentBag<string>();
        var next = -1;
        broker.CpuNanoseconds();
        var started = Stopwatch.GetTimestamp();
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < devices)
            {
                var serial = $"{prefix}{i}";
                var t0 = Stopwatch.GetTimestamp();
                try
                {
                    ProvisionedCertificate certificate;
                    RegisteredThing thing;
                    string privateKey;
                    await using (var claimConnection = await TrellisDevice.ConnectAsync(Options(host, port, $"claim-{serial}", claim, ca), ct))
                    {
                        using var provisioning = new FleetProvisioningClient(claimConnection);
                        if (keys == "csr")
                        {
                            // The device's own P-256 key: only a CSR travels, the server just signs.
                            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
                            privateKey = key.ExportPkcs8PrivateKeyPem();
                            certificate = await provisioning.CreateCertificateFromCsrAsync(new CertificateRequest($"CN={serial}", key, HashAlgorithmName.SHA256).CreateSigningRequestPem(), ct);
                        }
                        else
                        {
                            // AWS's default: the server generates an RSA-2048 key pair.
                            certificate = await provisioning.CreateKeysAndCertificateAsync(ct);
                            privateKey = certificate.PrivateKeyPem!;
                        }

                        thing = await provisioning.RegisterThingAsync(template, certificate.OwnershipToken, new Dictionary<string, string> { ["SerialNumber"] = serial }, ct);
                    }

                    using var own = X509Certificate2.CreateFromPem(certificate.CertificatePem, privateKey);
                    await using (await TrellisDevice.ConnectAsync(Options(host, port, thing.ThingName!, own, ca), ct))
                    {
                        latencies.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                    }

                    await File.WriteAllTextAsync(Path.Combine(outDir, thing.ThingName + ".pem"), certificate.CertificatePem, ct);
                    await File.WriteAllTextAsync(Path.Combine(outDir, thing.ThingName + ".key"), privateKey, ct);
                }
                catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
                {
                    errors.Add($"{serial}: {e.Message}");
                }
            }
        }, ct)));
        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        var cpu = broker.CpuNanoseconds() / (seconds * 1e7);
        foreach (var error in errors.Take(5))
        {
            await Console.Error.WriteLineAsync("provision: " + error);
        }

        var sorted = latencies.Order().ToArray();
        emit(new Dictionary<string, object?>
        {
            ["summary"] = true,
            ["broker"] = "trellis",
            ["scenario"] = "provision",
            ["keys"] = keys,
            ["devices"] = devices,
            ["provisioned"] = sorted.Length,
            ["errors"] = errors.Count,
            ["concurrency"] = concurrency,
            ["seconds"] = Math.Round(seconds, 2),
            ["devicesPerSecond"] = Math.Round(sorted.Length / seconds, 1),
            ["p50ms"] = Percentile(sorted, 0.5),
            ["p99ms"] = Percentile(sorted, 0.99),
            ["cpuPct"] = Math.Round(cpu),
            ["rssMiB"] = broker.RssKiB() / 1024,
        });
    }

    public static async Task ConnectAsync(string[] args, string name, BrokerProcess broker, Action<Dictionary<string, object?>> emit, CancellationToken ct)
    {
        var host = Get(args, "--host", "127.0.0.1");
        var port = int.Parse(Get(args, "--port", "1883"), CultureInfo.InvariantCulture);
        var auth = Get(args, "--auth", "token");
        var concurrency = int.Parse(Get(args, "--concurrency", "32"), CultureInfo.InvariantCulture);

        // Credentials are loaded before the clock starts: only the connects are timed.
        var factory = new MqttClientFactory();
        List<(string ClientId, Func<Task<IAsyncDisposable>> Connect)> plan = [];
        if (auth == "token")
        {
            foreach (var line in await File.ReadAllLinesAsync(Get(args, "--tokens", "tokens.tsv"), ct))
            {
                var parts = line.Split('\t');
                var options = new MqttClientOptionsBuilder().WithTcpServer(host, port).WithClientId(parts[0]).WithCredentials(parts[0], parts[1]).WithCleanSession(true).Build();
                plan.Add((parts[0], () => Connected.ConnectAsync(factory, options, ct)));
            }
        }
        else
        {
            // Certificate devices connect as the SDK does (TLS, server checked against the CA).
            var ca = X509CertificateLoader.LoadCertificateFromFile(Get(args, "--ca", "ca.pem"));
            foreach (var pem in Directory.EnumerateFiles(Get(args, "--devices-dir", "devices"), "*.pem").Order(StringComparer.Ordinal))
            {
                var thing = Path.GetFileNameWithoutExtension(pem);
                var options = Options(host, port, thing, X509Certificate2.CreateFromPemFile(pem, Path.ChangeExtension(pem, ".key")), ca);
                plan.Add((thing, async () => await TrellisDevice.ConnectAsync(options, ct)));
            }
        }

        // Two passes: the first warms the broker up (JIT of the connect path) and is not reported.
        var connections = new ConcurrentBag<IAsyncDisposable>();
        var latencies = new ConcurrentBag<double>();
        var errors = new ConcurrentBag<string>();
        long started = 0;
        for (var pass = 0; pass < 2; pass++)
        {
            if (pass > 0)
            {
                await Task.WhenAll(connections.Select(c => c.DisposeAsync().AsTask()));
                await Task.Delay(500, ct);
            }

            connections.Clear();
            latencies.Clear();
            errors.Clear();
            var next = -1;
            broker.CpuNanoseconds();
            started = Stopwatch.GetTimestamp();
            await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < plan.Count)
                {
                    var t0 = Stopwatch.GetTimestamp();
                    try
                    {
                        connections.Add(await plan[i].Connect());
                        latencies.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                    }
                    catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
                    {
                        errors.Add($"{plan[i].ClientId}: {e.Message}");
                    }
                }
            }, ct)));
        }

        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        var cpu = broker.CpuNanoseconds() / (seconds * 1e7);
        var rss = broker.RssKiB();
        foreach (var error in errors.Take(5))
        {
            await Console.Error.WriteLineAsync($"connect ({name}, {auth}): {error}");
        }

        var sorted = latencies.Order().ToArray();
        emit(new Dictionary<string, object?>
        {
            ["summary"] = true,
            ["broker"] = name,
            ["scenario"] = "connect",
            ["auth"] = auth,
            ["devices"] = plan.Count,
            ["connected"] = sorted.Length,
            ["errors"] = errors.Count,
            ["concurrency"] = concurrency,
            ["seconds"] = Math.Round(seconds, 2),
            ["connectsPerSecond"] = Math.Round(sorted.Length / seconds, 1),
            ["p50ms"] = Percentile(sorted, 0.5),
            ["p99ms"] = Percentile(sorted, 0.99),
            ["cpuPct"] = Math.Round(cpu),
            ["rssMiB"] = rss / 1024,
        });
        await Task.WhenAll(connections.Select(c => c.DisposeAsync().AsTask()));
    }

    private static DeviceOptions Options(string host, int port, string clientId, X509Certificate2 certificate, X509Certificate2 ca) => new()
    {
        Host = host,
        Port = port,
        ThingName = clientId,
        Certificate = certificate,
        CaCertificate = ca,
        RequestTimeout = TimeSpan.FromSeconds(30),
    };

    private static double? Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? null : Math.Round(sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))], 2);

    private static string Get(string[] args, string name, string fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }

    /// <summary>A plain MQTTnet connection, disconnected on dispose.</summary>
    private sealed class Connected(IMqttClient client) : IAsyncDisposable
    {
        public static async Task<IAsyncDisposable> ConnectAsync(MqttClientFactory factory, MqttClientOptions options, CancellationToken ct)
        {
            var client = factory.CreateMqttClient();
            var result = await client.ConnectAsync(options, ct);
            if (result.ResultCode != MqttClientConnectResultCode.Success)
            {
                client.Dispose();
                throw new InvalidOperationException($"CONNACK {result.ResultCode}");
            }

            return new Connected(client);
        }

        public async ValueTask DisposeAsync()
        {
            try
            {
                await client.DisconnectAsync();
            }
            catch (MQTTnet.Exceptions.MqttCommunicationException)
            {
            }

            client.Dispose();
        }
    }
}
