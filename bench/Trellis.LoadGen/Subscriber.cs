using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;

namespace Trellis.LoadGen;

/// <summary>Reads PUBLISH packets, records end-to-end latency from the timestamp in the payload, acks QoS 1.</summary>
internal sealed class Subscriber(Socket socket, int step)
{
    private readonly byte[] _buffer = new byte[256 * 1024];
    private readonly byte[] _acks = new byte[64 * 1024];

    public LatencyHistogram Histogram { get; } = new();

    public long Received;

    public int Step { get; set; } = step;

    public void Reset(int newStep)
    {
        Histogram.Clear();
        Interlocked.Exchange(ref Received, 0);
        Step = newStep;
    }

    public async Task RunAsync(CancellationToken ct)
    {
        var filled = 0;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var n = await socket.ReceiveAsync(_buffer.AsMemory(filled), ct);
                if (n == 0)
                {
                    return;
                }

                filled += n;
                var offset = 0;
                var ackBytes = 0;
                var now = Stopwatch.GetTimestamp();
                while (filled - offset >= 2)
                {
                    var header = _buffer[offset];
                    var length = 0;
                    var multiplier = 1;
                    var i = offset + 1;
                    var complete = false;
                    while (i < filled)
                    {
                        var b = _buffer[i++];
                        length += (b & 0x7F) * multiplier;
                        multiplier *= 128;
                        if ((b & 0x80) == 0)
                        {
                            complete = true;
                            break;
                        }
                    }

                    if (!complete || filled - i < length)
                    {
                        break;
                    }

                    if ((header & 0xF0) == 0x30)
                    {
                        var qos = (header >> 1) & 3;
                        var topicLength = BinaryPrimitives.ReadUInt16BigEndian(_buffer.AsSpan(i));
                        var p = i + 2 + topicLength;
                        if (qos > 0)
                        {
                            var packetId = BinaryPrimitives.ReadUInt16BigEndian(_buffer.AsSpan(p));
                            p += 2;
                            if (ackBytes + 4 > _acks.Length)
                            {
                                await socket.SendAsync(_acks.AsMemory(0, ackBytes), ct);
                                ackBytes = 0;
                            }

                            MqttWire.PutPubAck(_acks.AsSpan(ackBytes), packetId);
                            ackBytes += 4;
                        }

                        var sentAt = BinaryPrimitives.ReadInt64LittleEndian(_buffer.AsSpan(p));
                        var messageStep = BinaryPrimitives.ReadInt32LittleEndian(_buffer.AsSpan(p + 16));
                        if (messageStep == Step)
                        {
                            Histogram.Record((now - sentAt) * 1_000_000 / Stopwatch.Frequency);
                            Interlocked.Increment(ref Received);
                        }
                    }

                    offset = i + length;
                }

                if (ackBytes > 0)
                {
                    await socket.SendAsync(_acks.AsMemory(0, ackBytes), ct);
                }

                Buffer.BlockCopy(_buffer, offset, _buffer, 0, filled - offset);
                filled -= offset;
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (SocketException)
        {
        }
    }
}
