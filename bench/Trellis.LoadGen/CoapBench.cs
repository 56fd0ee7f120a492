using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Org.BouncyCastle.Tls;

namespace Trellis.LoadGen;

/// <summary>
/// CoAP requests from DEVICES simulated devices (one UDP socket each, as separate devices have),
/// at a ladder of offered rates: each device sends its share of requests of PAYLOAD bytes (CON or
/// NON), and the time from each request to its answer (the piggybacked ACK, or the NON answer)
/// gives p50 and p99. A step passes with no request unanswered and p99 ≤ 10 ms. The same ladder
/// runs against any CoAP server: Trellis (POST /topics/…) and libcoap's coap-server (PUT
/// /example_data) as the baseline. With <c>--psk-file FILE</c> (lines of identity TAB key) each
/// device first completes a DTLS 1.2 PSK handshake (BouncyCastle's client; the handshakes' rate
/// and the server's memory per session are reported, then the rate of resumed handshakes), and
/// every request and answer travels in its session.
/// </summary>
internal static class CoapBench
{
    public static async Task RunAsync(string[] args, string name, string host, int port, BrokerProcess server, double[] rates, double seconds, Action<Dictionary<string, object?>> emit, CancellationToken ct)
    {
        var devices = int.Parse(Get(args, "--devices", "1000"), CultureInfo.InvariantCulture);
        var payloadBytes = int.Parse(Get(args, "--payload", "64"), CultureInfo.InvariantCulture);
        var method = Get(args, "--coap-method", "post") == "put" ? (byte)3 : (byte)2;
        var path = Get(args, "--coap-path", "topics/bench/{i}");
        var confirmable = Get(args, "--coap-type", "con") == "con";
        var pskFile = Get(args, "--psk-file", string.Empty);
        var scenario = (pskFile.Length > 0 ? "coaps-" : "coap-") + (confirmable ? "con" : "non");
        var step = new Step(0, [], []);

        var sockets = new Socket[pskFile.Length > 0 ? 0 : devices];
        for (var i = 0; i < sockets.Length; i++)
        {
            sockets[i] = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            await sockets[i].ConnectAsync(IPAddress.Parse(host), port, ct);
        }

        DtlsDevice[] secure = [];
        using var reading = new CancellationTokenSource();
        if (pskFile.Length > 0)
        {
            var psks = (await File.ReadAllLinesAsync(pskFile, ct)).Select(l => l.Split('\t')).Take(devices).ToArray();
            devices = psks.Length;
            secure = await HandshakesAsync(name, psks, new IPEndPoint(IPAddress.Parse(host), port), server, int.Parse(Get(args, "--handshake-concurrency", "16"), CultureInfo.InvariantCulture), emit, reading.Token);
            foreach (var device in secure)
            {
                device.Received = answer => Note(answer.Span, Stopwatch.GetTimestamp(), Volatile.Read(ref step));
            }
        }

        var requests = Enumerable.Range(0, devices).Select(i => Request(method, path.Replace("{i}", i.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal), confirmable, payloadBytes)).ToArray();
        // Message ids run on across the steps: a device that reused one within EXCHANGE_LIFETIME would be
        // answered from the server's duplicate cache (the earlier answer, or none for a NON), as RFC 7252 says.
        var messageIds = new ushort[devices];
        var stepBase = 0;
        var failures = 0;
        foreach (var rate in rates.Prepend(rates[0]).Select((r, i) => (Rate: r, Warmup: i == 0)))
        {
            var total = (int)(rate.Rate * (rate.Warmup ? Math.Min(2, seconds) : seconds));
            var sent = new long[total];
            var answered = new long[total];
            using var stop = new CancellationTokenSource();
            stepBase += 10_000_000; // tokens of this step only: a late answer to an earlier step is not counted here
            var first = stepBase;
            var current = new Step(first, sent, answered);
            Volatile.Write(ref step, current);
            var readers = sockets.Select(s => Task.Run(() => ReadAsync(s, current, stop.Token))).ToArray();
            server.CpuNanoseconds();
            var started = Stopwatch.GetTimestamp();
            var next = 0;
            while (next < total)
            {
                var due = (int)Math.Min(total, (long)(Stopwatch.GetElapsedTime(started).TotalSeconds * rate.Rate));
                for (; next < due; next++)
                {
                    var device = next % devices;
                    var datagram = requests[device];
                    BinaryPrimitives.WriteUInt16BigEndian(datagram.AsSpan(2), ++messageIds[device]);
                    BinaryPrimitives.WriteInt32BigEndian(datagram.AsSpan(4), first + next);
                    sent[next] = Stopwatch.GetTimestamp();
                    if (secure.Length > 0)
                    {
                        secure[device].Send(datagram);
                    }
                    else
                    {
                        await sockets[device].SendAsync(datagram, SocketFlags.None, ct);
                    }
                }

                await Task.Delay(1, ct);
            }

            var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
            await Task.Delay(TimeSpan.FromSeconds(2), ct); // answers still on their way
            var cpu = server.CpuNanoseconds() / 1e9;
            await stop.CancelAsync();
            await Task.WhenAll(readers);
            var latencies = answered.Where(a => a > 0).Select(a => a * 1000.0 / Stopwatch.Frequency).Order().ToArray();
            double Percentile(double p) => latencies.Length == 0 ? double.NaN : latencies[Math.Min(latencies.Length - 1, (int)Math.Ceiling(p * latencies.Length) - 1)];
            if (rate.Warmup)
            {
                continue; // the first step at the lowest rate, not reported: both sides' first requests (JIT, caches)
            }

            var lost = total - latencies.Length;
            var p99 = Percentile(0.99);
            var passed = lost == 0 && p99 <= 10;
            emit(new Dictionary<string, object?>
            {
                ["scenario"] = scenario,
                ["broker"] = name,
                ["devices"] = devices,
                ["payloadBytes"] = payloadBytes,
                ["rate"] = rate.Rate,
                ["sentPerSecond"] = Math.Round(total / elapsed),
                ["answered"] = latencies.Length,
                ["lost"] = lost,
                ["p50Ms"] = Math.Round(Percentile(0.50), 3),
                ["p99Ms"] = Math.Round(p99, 3),
                ["serverCpuPercent"] = Math.Round(cpu / (elapsed + 2) * 100),
                ["passed"] = passed,
            });
            failures = passed ? 0 : failures + 1;
            if (failures == 2)
            {
                break;
            }
        }

        foreach (var socket in sockets)
        {
            socket.Dispose();
        }

        await reading.CancelAsync();
        foreach (var device in secure)
        {
            device.Dispose();
        }
    }

    /// <summary>
    /// Every device's DTLS handshake, CONCURRENCY at a time (each blocking on a thread of its own,
    /// as a device would): full handshakes with the server's RSS before and after (its memory per
    /// session), then each device again from a new port, resuming its session (abbreviated handshakes).
    /// </summary>
    private static async Task<DtlsDevice[]> HandshakesAsync(string name, string[][] psks, IPEndPoint at, BrokerProcess server, int concurrency, Action<Dictionary<string, object?>> emit, CancellationToken ct)
    {
        DtlsDevice[] Devices(DtlsDevice[]? earlier) => [.. psks.Select((p, i) => new DtlsDevice(at, p[0], System.Text.Encoding.UTF8.GetBytes(p[1])) { Session = earlier?[i].Session })];
        (double Seconds, int Failed) Run(DtlsDevice[] devices)
        {
            foreach (var device in devices)
            {
                _ = Task.Run(() => device.ReadAsync(ct), ct);
            }

            var next = -1;
            var failed = 0;
            var started = Stopwatch.GetTimestamp();
            var threads = Enumerable.Range(0, concurrency).Select(_ => new Thread(() =>
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < devices.Length)
                {
                    try
                    {
                        devices[i].Handshake();
                    }
                    catch (Exception e) when (e is IOException or TlsFatalAlert or TlsFatalAlertReceived or InvalidOperationException)
                    {
                        Interlocked.Increment(ref failed);
                    }
                }
            })).ToArray();
            foreach (var thread in threads)
            {
                thread.Start();
            }

            foreach (var thread in threads)
            {
                thread.Join();
            }

            return (Stopwatch.GetElapsedTime(started).TotalSeconds, failed);
        }

        await Task.Delay(500, ct);
        var rssBefore = server.RssKiB();
        server.CpuNanoseconds();
        var full = Devices(null);
        var (seconds, failed) = Run(full);
        var cpu = server.CpuNanoseconds() / 1e9;
        await Task.Delay(1000, ct);
        var rssAfter = server.RssKiB();
        emit(new Dictionary<string, object?>
        {
            ["scenario"] = "coaps-handshake",
            ["broker"] = name,
            ["devices"] = psks.Length,
            ["concurrency"] = concurrency,
            ["cipherSuite"] = full.FirstOrDefault(d => d.CipherSuite != 0)?.CipherSuite,
            ["failed"] = failed,
            ["handshakesPerSecond"] = Math.Round((psks.Length - failed) / seconds),
            ["serverCpuMsPerHandshake"] = Math.Round(cpu * 1000 / Math.Max(1, psks.Length - failed), 3),
            ["serverRssBeforeKiB"] = rssBefore,
            ["serverRssAfterKiB"] = rssAfter,
            ["serverBytesPerSession"] = Math.Round((rssAfter - rssBefore) * 1024.0 / Math.Max(1, psks.Length - failed)),
        });

        // Resumption: the same devices from new ports (a new session each), offering the sessions just made.
        server.CpuNanoseconds();
        var resumed = Devices(full);
        var (resumedSeconds, resumedFailed) = Run(resumed);
        cpu = server.CpuNanoseconds() / 1e9;
        emit(new Dictionary<string, object?>
        {
            ["scenario"] = "coaps-resumption",
            ["broker"] = name,
            ["devices"] = psks.Length,
            ["concurrency"] = concurrency,
            ["resumed"] = resumed.Count(d => d.Resumed),
            ["failed"] = resumedFailed,
            ["handshakesPerSecond"] = Math.Round((psks.Length - resumedFailed) / resumedSeconds),
            ["serverCpuMsPerHandshake"] = Math.Round(cpu * 1000 / Math.Max(1, psks.Length - resumedFailed), 3),
        });
        foreach (var device in full)
        {
            device.Dispose();
        }

        return resumed;
    }

    /// <summary>The requests of one ladder step: numbered from FIRST (in each request's token), when each was sent and how long its answer took.</summary>
    private sealed record Step(int First, long[] Sent, long[] Answered);

    /// <summary>Notes an answer's latency by the request's number, carried in its 4-byte token.</summary>
    private static void Note(ReadOnlySpan<byte> answer, long now, Step step)
    {
        if (answer.Length >= 8 && (answer[0] & 0x0F) == 4 && answer[1] >> 5 == 2)
        {
            var seq = BinaryPrimitives.ReadInt32BigEndian(answer[4..]) - step.First;
            if (seq >= 0 && seq < step.Sent.Length && step.Answered[seq] == 0)
            {
                step.Answered[seq] = now - step.Sent[seq];
            }
        }
    }

    private static async Task ReadAsync(Socket socket, Step step, CancellationToken ct)
    {
        var buffer = new byte[2048];
        try
        {
            while (true)
            {
                var n = await socket.ReceiveAsync(buffer, SocketFlags.None, ct);
                Note(buffer.AsSpan(0, n), Stopwatch.GetTimestamp(), step);
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (SocketException)
        {
        }
    }

    /// <summary>A request with a 4-byte token (the request's number, written before each send), the path's Uri-Path options and the payload.</summary>
    private static byte[] Request(byte code, string path, bool confirmable, int payloadBytes)
    {
        var bytes = new List<byte> { (byte)(0x40 | (confirmable ? 0 : 0x10) | 4), code, 0, 0, 0, 0, 0, 0 };
        var last = 0;
        foreach (var segment in path.Split('/'))
        {
            var value = Encoding.UTF8.GetBytes(segment);
            var delta = 11 - last;
            last = 11;
            bytes.Add((byte)((delta << 4) | Math.Min(value.Length, 13)));
            if (value.Length >= 13)
            {
                bytes.Add((byte)(value.Length - 13));
            }

            bytes.AddRange(value);
        }

        bytes.Add(0xFF);
        bytes.AddRange(Enumerable.Repeat((byte)'x', payloadBytes));
        return [.. bytes];
    }

    private static string Get(string[] args, string name, string fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }
}
