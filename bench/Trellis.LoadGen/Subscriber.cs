using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;

namespace Trellis.LoadGen;

/// <summary>Reads PUBLISH packets, records end-to-end latency from the timestamp in the payload, acks QoS 1.</summary>
internal sealed class Subscriber(Socket socket, int step) : PublishReader(socket, 256 * 1024)
{
    public LatencyHistogram Histogram { get; } = new();

    public long Received;

    public int Step { get; set; } = step;

    /// <summary>With --trace: every counted message's send time, sequence number, step and read time.</summary>
    public List<(long SentAt, long Sequence, int Step, long ReadAt)>? Trace { get; set; }

    public void Reset(int newStep)
    {
        Histogram.Clear();
        Interlocked.Exchange(ref Received, 0);
        Step = newStep;
    }

    public Task RunAsync(CancellationToken ct) => RunReaderAsync(ct);

    protected override void OnPublish(ReadOnlySpan<byte> topic, ReadOnlySpan<byte> payload, long now)
    {
        var sentAt = BinaryPrimitives.ReadInt64LittleEndian(payload);
        var messageStep = BinaryPrimitives.ReadInt32LittleEndian(payload[16..]);
        if (messageStep == Step)
        {
            Histogram.Record((now - sentAt) * 1_000_000 / Stopwatch.Frequency);
            Trace?.Add((sentAt, BinaryPrimitives.ReadInt64LittleEndian(payload[8..]), messageStep, now));
            Interlocked.Increment(ref Received);
        }
    }
}
