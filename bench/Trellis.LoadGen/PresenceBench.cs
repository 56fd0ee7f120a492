using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace Trellis.LoadGen;

/// <summary>
/// Presence at scale: CONNECTIONS clients connect with a keep-alive of KEEPALIVE seconds and then
/// go silent (no PINGREQ, sockets left open); a watcher subscribed to
/// <c>$aws/events/presence/disconnected/+</c> notes when each one's event arrives. Reports how long
/// after 1.5 × keep-alive (counted from each client's CONNECT) the events came: the target is that
/// every client is offline within 1.5 × keep-alive + 1 s.
/// </summary>
internal static class PresenceBench
{
    public static async Task RunAsync(string[] args, string host, int port, BrokerProcess broker, Action<Dictionary<string, object?>> emit, CancellationToken ct)
    {
        var count = int.Parse(Get(args, "--connections", "10000"), System.Globalization.CultureInfo.InvariantCulture);
        var keepAlive = ushort.Parse(Get(args, "--keepalive", "10"), System.Globalization.CultureInfo.InvariantCulture);
        var watcherSocket = await MqttWire.OpenAsync(host, port, "presence-watcher", ct);
        await MqttWire.SubscribeAsync(watcherSocket, "$aws/events/presence/disconnected/+", 0, ct);
        var watcher = new Watcher(watcherSocket);
        using var reading = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var readerTask = Task.Run(() => watcher.RunReaderAsync(reading.Token), ct);

        var sentAt = new long[count];
        var sockets = new Socket[count];
        for (var start = 0; start < count; start += 200)
        {
            await Task.WhenAll(Enumerable.Range(start, Math.Min(200, count - start)).Select(async i =>
            {
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                await socket.ConnectAsync(host, port, ct);
                sentAt[i] = Stopwatch.GetTimestamp();
                await socket.SendAsync(MqttWire.Connect($"silent-{i}", keepAlive), ct);
                var connack = new byte[4];
                await MqttWire.ReceiveExactlyAsync(socket, connack, ct);
                sockets[i] = socket;
            }));
        }

        var due = TimeSpan.FromSeconds(keepAlive * 1.5);
        var deadline = Stopwatch.GetTimestamp() + (long)((due.TotalSeconds + 30) * Stopwatch.Frequency);
        while (watcher.Events.Count < count && Stopwatch.GetTimestamp() < deadline)
        {
            await Task.Delay(100, ct);
        }

        var lags = new List<double>(count);
        for (var i = 0; i < count; i++)
        {
            if (watcher.Events.TryGetValue($"silent-{i}", out var at))
            {
                lags.Add(((at - sentAt[i]) / (double)Stopwatch.Frequency) - due.TotalSeconds);
            }
        }

        lags.Sort();
        double Percentile(double p) => lags.Count == 0 ? double.NaN : lags[Math.Min(lags.Count - 1, (int)Math.Ceiling(p * lags.Count) - 1)];
        emit(new Dictionary<string, object?>
        {
            ["scenario"] = "presence",
            ["broker"] = "trellis",
            ["connections"] = count,
            ["keepAliveSeconds"] = keepAlive,
            ["offlineEvents"] = lags.Count,
            ["withinOneSecond"] = lags.Count(l => l <= 1.0),
            ["lagAfterDueP50Ms"] = Math.Round(Percentile(0.5) * 1000, 0),
            ["lagAfterDueP99Ms"] = Math.Round(Percentile(0.99) * 1000, 0),
            ["lagAfterDueMaxMs"] = Math.Round(Percentile(1.0) * 1000, 0),
            ["rssMiB"] = broker.RssKiB() / 1024,
        });
        await reading.CancelAsync();
        foreach (var socket in sockets)
        {
            socket.Dispose();
        }

        watcherSocket.Dispose();
        await readerTask;
    }

    private static string Get(string[] args, string name, string fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }

    /// <summary>Notes when each client's disconnected event arrives.</summary>
    private sealed class Watcher(Socket socket) : PublishReader(socket, 256 * 1024)
    {
        private static readonly byte[] Prefix = "$aws/events/presence/disconnected/"u8.ToArray();

        public ConcurrentDictionary<string, long> Events { get; } = new(StringComparer.Ordinal);

        protected override void OnPublish(ReadOnlySpan<byte> topic, ReadOnlySpan<byte> payload, long now)
        {
            if (topic.StartsWith(Prefix))
            {
                Events.TryAdd(Encoding.UTF8.GetString(topic[Prefix.Length..]), now);
            }
        }
    }
}
