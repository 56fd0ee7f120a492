using System.Collections.Concurrent;
using System.Globalization;
using Trellis.Broker.Protocol;

namespace Trellis.Broker.Internal;

/// <summary>
/// Idempotent publishes (docs/gateway.md, "Store-and-forward"): a client that numbers its QoS 1/2
/// messages with the MQTT 5 user property <c>trellis-seq: STREAM:SEQ</c> (a gateway forwarding its
/// disk queue) may send one again after a crash or a lost connection, and the broker acknowledges
/// the repeat without routing it a second time. Per client it keeps the stream, the highest number
/// seen and which of the 65 536 numbers below it were seen, so messages that arrive out of order
/// are still taken once each. A new stream (a new queue) starts afresh. The windows are kept in
/// sessions.db across a restart of the server; across a crash of the server a message routed but
/// not yet acknowledged may be routed twice (at least once), as for any QoS 1 publisher.
/// </summary>
internal sealed class PublishSequences
{
    public const string Property = "trellis-seq";
    private const int WindowBits = 65_536;

    private readonly ConcurrentDictionary<string, Window> _windows = new(StringComparer.Ordinal);

    /// <summary>True when <paramref name="properties"/> number a message this client already sent.</summary>
    public bool IsRepeat(string clientId, IReadOnlyList<UserProperty>? properties)
    {
        if (properties is null || !TryParse(properties, out var stream, out var seq))
        {
            return false;
        }

        var window = _windows.GetOrAdd(clientId, _ => new Window());
        lock (window)
        {
            if (!string.Equals(window.Stream, stream, StringComparison.Ordinal))
            {
                window.Reset(stream);
            }

            return window.See(seq);
        }
    }

    public IEnumerable<(string ClientId, string Stream, long Mark, byte[] Seen)> Snapshot()
    {
        foreach (var (client, window) in _windows)
        {
            lock (window)
            {
                if (window.Stream is { } stream)
                {
                    var bytes = new byte[window.Bits.Length * sizeof(ulong)];
                    Buffer.BlockCopy(window.Bits, 0, bytes, 0, bytes.Length);
                    yield return (client, stream, window.Mark, bytes);
                }
            }
        }
    }

    public void Restore(string clientId, string stream, long mark, byte[] seen)
    {
        var window = new Window { Stream = stream, Mark = mark };
        Buffer.BlockCopy(seen, 0, window.Bits, 0, Math.Min(seen.Length, window.Bits.Length * sizeof(ulong)));
        _windows[clientId] = window;
    }

    private static bool TryParse(IReadOnlyList<UserProperty> properties, out string stream, out long seq)
    {
        foreach (var p in properties)
        {
            if (p.Name == Property)
            {
                var colon = p.Value.LastIndexOf(':');
                if (colon > 0 && long.TryParse(p.Value.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out seq) && seq > 0)
                {
                    stream = p.Value[..colon];
                    return true;
                }
            }
        }

        stream = string.Empty;
        seq = 0;
        return false;
    }

    private sealed class Window
    {
        public string? Stream;
        public long Mark;
        public readonly ulong[] Bits = new ulong[WindowBits / 64];

        public void Reset(string stream)
        {
            Stream = stream;
            Mark = 0;
            Array.Clear(Bits);
        }

        /// <summary>Records <paramref name="seq"/>; true when it was seen before (or is too old to tell, so taken as seen).</summary>
        public bool See(long seq)
        {
            if (seq > Mark)
            {
                if (seq - Mark >= WindowBits)
                {
                    Array.Clear(Bits);
                }
                else
                {
                    for (var s = Mark + 1; s < seq; s++)
                    {
                        Clear(s);
                    }
                }

                Mark = seq;
                Set(seq);
                return false;
            }

            if (Mark - seq >= WindowBits || IsSet(seq))
            {
                return true;
            }

            Set(seq);
            return false;
        }

        private void Set(long seq) => Bits[(int)(seq % WindowBits) >> 6] |= 1UL << (int)(seq & 63);

        private void Clear(long seq) => Bits[(int)(seq % WindowBits) >> 6] &= ~(1UL << (int)(seq & 63));

        private bool IsSet(long seq) => (Bits[(int)(seq % WindowBits) >> 6] & (1UL << (int)(seq & 63))) != 0;
    }
}
