using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;

namespace Trellis.LoadGen;

/// <summary>
/// Reads PUBLISH packets from a socket, acknowledges QoS 1 ones (one write per read), and hands
/// each topic and payload to <see cref="OnPublish"/> with the time the read completed.
/// </summary>
internal abstract class PublishReader(Socket socket, int bufferBytes, bool preallocateAcks = false)
{
    private readonly byte[] _buffer = new byte[bufferBytes];

    // A QoS 1 PUBLISH is at least 6 bytes and its PUBACK 4: two thirds of the buffer always fit. Made
    // at the first QoS 1 message, or up front where that first message is what is measured (allocating
    // 10 000 of them inside the measured window costs the load generator a burst of page faults).
    private byte[]? _acks = preallocateAcks ? new byte[(bufferBytes * 2 / 3) + 4] : null;

    protected Socket Socket => socket;

    /// <summary>One received PUBLISH; <paramref name="now"/> is a <see cref="Stopwatch"/> timestamp.</summary>
    protected abstract void OnPublish(ReadOnlySpan<byte> topic, ReadOnlySpan<byte> payload, long now);

    public async Task RunReaderAsync(CancellationToken ct)
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
                var (consumed, ackBytes) = Parse(filled, Stopwatch.GetTimestamp());
                if (ackBytes > 0)
                {
                    await socket.SendAsync(_acks.AsMemory(0, ackBytes), ct);
                }

                Buffer.BlockCopy(_buffer, consumed, _buffer, 0, filled - consumed);
                filled -= consumed;
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (SocketException)
        {
        }
    }

    /// <summary>Handles every whole packet in the buffer; returns the bytes consumed and the PUBACK bytes to send.</summary>
    private (int Consumed, int AckBytes) Parse(int filled, long now)
    {
        var offset = 0;
        var ackBytes = 0;
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
                var topicLength = BinaryPrimitives.ReadUInt16BigEndian(_buffer.AsSpan(i));
                var p = i + 2 + topicLength;
                if (((header >> 1) & 3) > 0)
                {
                    _acks ??= new byte[(_buffer.Length * 2 / 3) + 4];
                    MqttWire.PutPubAck(_acks.AsSpan(ackBytes), BinaryPrimitives.ReadUInt16BigEndian(_buffer.AsSpan(p)));
                    ackBytes += 4;
                    p += 2;
                }

                OnPublish(_buffer.AsSpan(i + 2, topicLength), _buffer.AsSpan(p, i + length - p), now);
            }

            offset = i + length;
        }

        return (offset, ackBytes);
    }
}
