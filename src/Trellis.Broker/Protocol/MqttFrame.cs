using System.Buffers;

namespace Trellis.Broker.Protocol;

/// <summary>Finds packet boundaries in a byte stream (MQTT 5 §2.1 fixed header).</summary>
internal static class MqttFrame
{
    /// <summary>
    /// Reads the fixed header at the start of <paramref name="buffer"/>. A declared length over
    /// <paramref name="maxPacketSize"/> is reported as soon as the length is read, before the body
    /// arrives, so an oversized packet is never buffered.
    /// </summary>
    public static FrameStatus TryRead(in ReadOnlySequence<byte> buffer, int maxPacketSize, out byte header, out int headerLength, out int remainingLength)
    {
        header = 0;
        headerLength = 0;
        remainingLength = 0;
        if (buffer.Length < 2)
        {
            return FrameStatus.Incomplete;
        }

        Span<byte> head = stackalloc byte[5];
        var available = (int)Math.Min(5, buffer.Length);
        buffer.Slice(0, available).CopyTo(head);
        header = head[0];

        var value = 0;
        for (var i = 1; i <= 4; i++)
        {
            if (i >= available)
            {
                return FrameStatus.Incomplete;
            }

            var b = head[i];
            value |= (b & 0x7F) << (7 * (i - 1));
            if ((b & 0x80) == 0)
            {
                headerLength = i + 1;
                remainingLength = value;
                if ((long)headerLength + value > maxPacketSize)
                {
                    return FrameStatus.TooLarge;
                }

                return buffer.Length >= headerLength + value ? FrameStatus.Complete : FrameStatus.Incomplete;
            }
        }

        // MQTT §2.2.3: the remaining length is at most four bytes.
        return FrameStatus.MalformedLength;
    }
}
