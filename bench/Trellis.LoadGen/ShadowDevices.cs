using System.Buffers.Binary;
using System.Buffers.Text;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace Trellis.LoadGen;

/// <summary>
/// One simulated device for the shadow scenario: publishes QoS 1 shadow updates that change
/// desired (so every accepted update produces a delta), and reads its own deltas, measuring
/// update-to-delta latency from the send timestamp carried in the desired state.
/// </summary>
internal sealed class ShadowDevice : PublishReader
{
    private static readonly byte[] DeltaSuffix = "/update/delta"u8.ToArray();
    private static readonly byte[] RejectedSuffix = "/update/rejected"u8.ToArray();
    private static readonly byte[] TsKey = "\"ts\":"u8.ToArray();
    private static readonly byte[] StepKey = "\"step\":"u8.ToArray();

    private readonly byte[] _topic;
    private readonly byte[] _out = new byte[16 * 1024];
    private ushort _packetId;

    public ShadowDevice(Socket socket, string thing)
        : base(socket, 64 * 1024)
    {
        Thing = thing;
        _topic = Encoding.UTF8.GetBytes($"$aws/things/{thing}/shadow/update");
    }

    public string Thing { get; }

    public long Sent;

    public long Deltas;

    public long Rejected;

    public int Step { get; private set; }

    public LatencyHistogram Histogram { get; } = new();

    public void Reset(int step)
    {
        Histogram.Clear();
        Interlocked.Exchange(ref Deltas, 0);
        Interlocked.Exchange(ref Rejected, 0);
        Interlocked.Exchange(ref Sent, 0);
        Step = step;
    }

    /// <summary>Sends <paramref name="count"/> updates in one write.</summary>
    public async ValueTask SendAsync(int count, long sequence, CancellationToken ct)
    {
        var length = 0;
        for (var i = 0; i < count && length < _out.Length - 512; i++)
        {
            var payload = Encoding.UTF8.GetBytes($"{{\"state\":{{\"desired\":{{\"step\":{Step},\"seq\":{sequence + i},\"ts\":{Stopwatch.GetTimestamp()}}}}}}}");
            var remaining = 2 + _topic.Length + 2 + payload.Length;
            _out[length++] = 0x32; // PUBLISH, QoS 1
            length += WriteLength(_out.AsSpan(length), remaining);
            BinaryPrimitives.WriteUInt16BigEndian(_out.AsSpan(length), (ushort)_topic.Length);
            length += 2;
            _topic.CopyTo(_out, length);
            length += _topic.Length;
            _packetId = (ushort)(_packetId == ushort.MaxValue ? 1 : _packetId + 1);
            BinaryPrimitives.WriteUInt16BigEndian(_out.AsSpan(length), _packetId);
            length += 2;
            payload.CopyTo(_out, length);
            length += payload.Length;
            Interlocked.Increment(ref Sent);
        }

        await Socket.SendAsync(_out.AsMemory(0, length), ct);
    }

    protected override void OnPublish(ReadOnlySpan<byte> topic, ReadOnlySpan<byte> payload, long now)
    {
        if (topic.EndsWith(DeltaSuffix) && Number(payload, StepKey) == Step && Number(payload, TsKey) is { } sentAt and > 0)
        {
            Histogram.Record((now - sentAt) * 1_000_000 / Stopwatch.Frequency);
            Interlocked.Increment(ref Deltas);
        }
        else if (topic.EndsWith(RejectedSuffix))
        {
            Interlocked.Increment(ref Rejected);
        }
    }

    private static long? Number(ReadOnlySpan<byte> json, ReadOnlySpan<byte> key)
    {
        var at = json.IndexOf(key);
        return at >= 0 && Utf8Parser.TryParse(json[(at + key.Length)..], out long value, out _) ? value : null;
    }

    private static int WriteLength(Span<byte> destination, int length)
    {
        var i = 0;
        do
        {
            var digit = (byte)(length % 128);
            length /= 128;
            if (length > 0)
            {
                digit |= 0x80;
            }

            destination[i++] = digit;
        }
        while (length > 0);
        return i;
    }
}
