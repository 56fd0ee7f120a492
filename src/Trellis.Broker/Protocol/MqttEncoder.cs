using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Trellis.Broker.Protocol;

/// <summary>Writes MQTT packets. Pure: callers own the buffer and the flush.</summary>
internal static class MqttEncoder
{
    public static int VarIntSize(int value) => value < 128 ? 1 : value < 16_384 ? 2 : value < 2_097_152 ? 3 : 4;

    public static void WriteConnAck(IBufferWriter<byte> writer, bool v5, bool sessionPresent, byte reason, ConnAckProperties? props)
    {
        if (!v5)
        {
            var span = writer.GetSpan(4);
            span[0] = 0x20;
            span[1] = 2;
            span[2] = (byte)(sessionPresent && reason == 0 ? 1 : 0);
            span[3] = ReasonCode.ToV3ConnAck(reason);
            writer.Advance(4);
            return;
        }

        var propLen = 0;
        if (props is not null)
        {
            if (props.SessionExpiryInterval is not null)
            {
                propLen += 5;
            }

            propLen += 5 + 2 + 2 + 2 + 2; // max packet size; retain, wildcard, sub-id, shared available
            if (props.TopicAliasMaximum > 0)
            {
                propLen += 3;
            }

            if (props.ReceiveMaximum is > 0 and < ushort.MaxValue)
            {
                propLen += 3;
            }

            if (props.AssignedClientIdentifier is not null)
            {
                propLen += 3 + Encoding.UTF8.GetByteCount(props.AssignedClientIdentifier);
            }

            if (props.ServerKeepAlive is not null)
            {
                propLen += 3;
            }

            if (props.ReasonString is not null)
            {
                propLen += 3 + Encoding.UTF8.GetByteCount(props.ReasonString);
            }
        }

        var remaining = 2 + VarIntSize(propLen) + propLen;
        var w = new SpanWriter(writer.GetSpan(1 + VarIntSize(remaining) + remaining));
        w.Byte(0x20);
        w.VarInt(remaining);
        w.Byte((byte)(sessionPresent && reason == 0 ? 1 : 0));
        w.Byte(reason);
        w.VarInt(propLen);
        if (props is not null)
        {
            if (props.SessionExpiryInterval is { } sei)
            {
                w.Byte(0x11);
                w.UInt32(sei);
            }

            w.Byte(0x27);
            w.UInt32(props.MaximumPacketSize);
            w.Byte(0x25); // retain available
            w.Byte(1);
            w.Byte(0x28); // wildcard subscription available
            w.Byte(1);
            w.Byte(0x29); // subscription identifiers available
            w.Byte(1);
            w.Byte(0x2A); // shared subscription available
            w.Byte(1);
            if (props.ReceiveMaximum is > 0 and < ushort.MaxValue)
            {
                w.Byte(0x21);
                w.UInt16(props.ReceiveMaximum);
            }

            if (props.TopicAliasMaximum > 0)
            {
                w.Byte(0x22);
                w.UInt16(props.TopicAliasMaximum);
            }

            if (props.AssignedClientIdentifier is not null)
            {
                w.Byte(0x12);
                w.String(props.AssignedClientIdentifier);
            }

            if (props.ServerKeepAlive is { } ka)
            {
                w.Byte(0x13);
                w.UInt16(ka);
            }

            if (props.ReasonString is not null)
            {
                w.Byte(0x1F);
                w.String(props.ReasonString);
            }
        }

        writer.Advance(w.Written);
    }

    /// <summary>Size of the PUBLISH properties block content (without its length prefix).</summary>
    private static int PublishPropertiesLength(PublishProperties? props, uint[]? subscriptionIds, long nowMs, long receivedAtMs, out uint? expiryLeft)
    {
        expiryLeft = null;
        var length = 0;
        if (props is not null)
        {
            if (props.PayloadFormatIndicator is not null)
            {
                length += 2;
            }

            if (props.MessageExpiryInterval is { } expiry)
            {
                // §3.3.2.3.3: forward the remaining lifetime, not the original.
                var waited = nowMs <= 0 ? 0 : Math.Max(0, (nowMs - receivedAtMs) / 1000);
                expiryLeft = (uint)Math.Max(1, expiry - waited);
                length += 5;
            }

            if (props.ContentType is not null)
            {
                length += 3 + Encoding.UTF8.GetByteCount(props.ContentType);
            }

            if (props.ResponseTopic is not null)
            {
                length += 3 + Encoding.UTF8.GetByteCount(props.ResponseTopic);
            }

            if (props.CorrelationData is not null)
            {
                length += 3 + props.CorrelationData.Length;
            }

            if (props.UserProperties is not null)
            {
                foreach (var p in props.UserProperties)
                {
                    length += 5 + Encoding.UTF8.GetByteCount(p.Name) + Encoding.UTF8.GetByteCount(p.Value);
                }
            }
        }

        if (subscriptionIds is not null)
        {
            // MQTT 5 §3.3.4: one property per matching subscription that has an identifier.
            foreach (var sid in subscriptionIds)
            {
                length += 1 + VarIntSize((int)sid);
            }
        }

        return length;
    }

    /// <summary>A frame scratch buffer that grew past this is dropped after use rather than kept by its thread.</summary>
    private const int MaxScratchBytes = 16 * 1024;

    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_frameScratch;

    public static byte[] EncodePublishFrame(MqttMessage message, byte qos, ushort packetId, bool v5, bool retain, uint[]? subscriptionIds, bool dup = false, long nowMs = 0)
    {
        // Encoded in a per-thread scratch buffer, then copied once into an array of the exact size.
        var buffer = t_frameScratch ??= new ArrayBufferWriter<byte>(256);
        buffer.ResetWrittenCount();
        WritePublish(buffer, message, qos, packetId, v5, retain, subscriptionIds, dup, nowMs);
        var frame = buffer.WrittenSpan.ToArray();
        if (buffer.Capacity > MaxScratchBytes)
        {
            t_frameScratch = null; // a large message's buffer is not kept for the thread's lifetime
        }

        return frame;
    }

    public static void WritePublish(IBufferWriter<byte> writer, MqttMessage message, byte qos, ushort packetId, bool v5, bool retain, uint[]? subscriptionIds, bool dup = false, long nowMs = 0)
    {
        var topicLength = Encoding.UTF8.GetByteCount(message.Topic);
        var propLen = 0;
        uint? expiryLeft = null;
        if (v5)
        {
            propLen = PublishPropertiesLength(message.Properties, subscriptionIds, nowMs, message.ReceivedAtMs, out expiryLeft);
        }

        var remaining = 2 + topicLength + (qos > 0 ? 2 : 0) + (v5 ? VarIntSize(propLen) + propLen : 0) + message.Payload.Length;
        var headerAndFields = 1 + VarIntSize(remaining) + remaining - message.Payload.Length;
        var w = new SpanWriter(writer.GetSpan(headerAndFields));
        w.Byte((byte)(0x30 | (dup ? 0x08 : 0) | (qos << 1) | (retain ? 1 : 0)));
        w.VarInt(remaining);
        w.UInt16((ushort)topicLength);
        w.Utf8(message.Topic);
        if (qos > 0)
        {
            w.UInt16(packetId);
        }

        if (v5)
        {
            w.VarInt(propLen);
            var props = message.Properties;
            if (props is not null)
            {
                if (props.PayloadFormatIndicator is { } pf)
                {
                    w.Byte(0x01);
                    w.Byte(pf);
                }

                if (expiryLeft is { } left)
                {
                    w.Byte(0x02);
                    w.UInt32(left);
                }

                if (props.ContentType is not null)
                {
                    w.Byte(0x03);
                    w.String(props.ContentType);
                }

                if (props.ResponseTopic is not null)
                {
                    w.Byte(0x08);
                    w.String(props.ResponseTopic);
                }

                if (props.CorrelationData is not null)
                {
                    w.Byte(0x09);
                    w.UInt16((ushort)props.CorrelationData.Length);
                    w.Bytes(props.CorrelationData);
                }

                if (props.UserProperties is not null)
                {
                    foreach (var p in props.UserProperties)
                    {
                        w.Byte(0x26);
                        w.String(p.Name);
                        w.String(p.Value);
                    }
                }
            }

            if (subscriptionIds is not null)
            {
                foreach (var sid in subscriptionIds)
                {
                    w.Byte(0x0B);
                    w.VarInt((int)sid);
                }
            }
        }

        writer.Advance(w.Written);
        if (!message.Payload.IsEmpty)
        {
            writer.Write(message.Payload.Span);
        }
    }

    /// <summary>PUBACK, PUBREC, PUBREL or PUBCOMP; v5 adds the reason code when it is not 0 (§3.4.2.1).</summary>
    public static void WriteAck(IBufferWriter<byte> writer, PacketType type, ushort packetId, bool v5, byte reason = 0)
    {
        var withReason = v5 && reason != 0;
        var span = writer.GetSpan(5);
        span[0] = (byte)(((byte)type << 4) | (type == PacketType.PubRel ? 0x02 : 0));
        span[1] = (byte)(withReason ? 3 : 2);
        BinaryPrimitives.WriteUInt16BigEndian(span[2..], packetId);
        if (withReason)
        {
            span[4] = reason;
        }

        writer.Advance(withReason ? 5 : 4);
    }

    public static void WriteSubAck(IBufferWriter<byte> writer, ushort packetId, ReadOnlySpan<byte> codes, bool v5) =>
        WriteIdAndCodes(writer, 0x90, packetId, codes, v5);

    public static void WriteUnsubAck(IBufferWriter<byte> writer, ushort packetId, ReadOnlySpan<byte> codes, bool v5) =>
        WriteIdAndCodes(writer, 0xB0, packetId, v5 ? codes : [], v5);

    private static void WriteIdAndCodes(IBufferWriter<byte> writer, byte header, ushort packetId, ReadOnlySpan<byte> codes, bool v5)
    {
        var remaining = 2 + (v5 ? 1 : 0) + codes.Length;
        var w = new SpanWriter(writer.GetSpan(1 + VarIntSize(remaining) + remaining));
        w.Byte(header);
        w.VarInt(remaining);
        w.UInt16(packetId);
        if (v5)
        {
            w.VarInt(0);
        }

        w.Bytes(codes);
        writer.Advance(w.Written);
    }

    public static void WritePingResp(IBufferWriter<byte> writer)
    {
        var span = writer.GetSpan(2);
        span[0] = 0xD0;
        span[1] = 0;
        writer.Advance(2);
    }

    /// <summary>Server-sent DISCONNECT (MQTT 5 only, §3.14).</summary>
    public static void WriteDisconnect(IBufferWriter<byte> writer, byte reason, string? reasonString)
    {
        var propLen = reasonString is null ? 0 : 3 + Encoding.UTF8.GetByteCount(reasonString);
        var remaining = 1 + VarIntSize(propLen) + propLen;
        var w = new SpanWriter(writer.GetSpan(1 + VarIntSize(remaining) + remaining));
        w.Byte(0xE0);
        w.VarInt(remaining);
        w.Byte(reason);
        w.VarInt(propLen);
        if (reasonString is not null)
        {
            w.Byte(0x1F);
            w.String(reasonString);
        }

        writer.Advance(w.Written);
    }
}
