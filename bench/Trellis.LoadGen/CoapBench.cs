using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Trellis.LoadGen;

/// <summary>
/// CoAP requests from DEVICES simulated devices (one UDP socket each, as separate devices have),
/// at a ladder of offered rates: each device sends its share of requests of PAYLOAD bytes (CON or
/// NON), and the time from each request to its answer (the piggybacked ACK, or the NON answer)
/// gives p50 and p99. A step passes with no request unanswered and p99 ≤ 10 ms. The same ladder
/// runs against any CoAP server: Trellis (POST /topics/…) and libcoap's coap-server (PUT
/// /example_data) as the baseline.
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
        var scenario = confirmable ? "coap-con" : "coap-non";

        var sockets = new Socket[devices];
        for (var i = 0; i < devices; i++)
        {
            sockets[i] = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            await sockets[i].ConnectAsync(IPAddress.Parse(host), port, ct);
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
            var readers = sockets.Select(s => Task.Run(() => ReadAsync(s, first, sent, answered, stop.Token))).ToArray();
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
                    await sockets[device].SendAsync(datagram, SocketFlags.None, ct);
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
    }

    /// <summary>Notes each answer's latency by the request's number, carried in its 4-byte token.</summary>
    private static async Task ReadAsync(Socket socket, int first, long[] sent, long[] answered, CancellationToken ct)
    {
        var buffer = new byte[2048];
        try
        {
            while (true)
            {
                var n = await socket.ReceiveAsync(buffer, SocketFlags.None, ct);
                var now = Stopwatch.GetTimestamp();
                if (n >= 8 && (buffer[0] & 0x0F) == 4 && buffer[1] >> 5 == 2)
                {
                    var seq = BinaryPrimitives.ReadInt32BigEndian(buffer.AsSpan(4)) - first;
                    if (seq >= 0 && seq < sent.Length && answered[seq] == 0)
                    {
                        answered[seq] = now - sent[seq];
                    }
                }
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
