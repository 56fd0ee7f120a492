using System.Buffers;

namespace Trellis.Broker.Protocol;

/// <summary>
/// One application message as routed by the broker. Immutable once published: the same instance is
/// queued to every subscriber, and its encoded QoS 0 frames are cached for the fan-out.
/// </summary>
internal sealed class MqttMessage
{
    private byte[]? _v3Qos0Frame;
    private byte[]? _v5Qos0Frame;
    private int _qos0Deliveries;

    public required string Topic { get; init; }

    public required ReadOnlyMemory<byte> Payload { get; init; }

    public byte Qos { get; init; }

    public bool Retain { get; init; }

    /// <summary>MQTT 5 publish properties, or null when there are none.</summary>
    public PublishProperties? Properties { get; init; }

    /// <summary>The client id of the publisher; empty for messages the server makes.</summary>
    public string SenderClientId { get; init; } = string.Empty;

    /// <summary>What made a server message (e.g. "rule:name" for a rule's republish), so observers can avoid loops.</summary>
    public string? Origin { get; init; }

    /// <summary>When the broker received it (Unix ms), for message expiry and lifecycle timestamps.</summary>
    public long ReceivedAtMs { get; init; }

    /// <summary>
    /// Writes the QoS 0 PUBLISH (RETAIN=0, no subscription identifier) for a protocol version. The
    /// first delivery encodes straight into <paramref name="writer"/>, so a message with one
    /// subscriber allocates no frame; from the second on, the frame is encoded once and shared by
    /// the rest of the fan-out.
    /// </summary>
    public void WriteQos0(IBufferWriter<byte> writer, bool v5)
    {
        var frame = GetQos0Frame(v5, onlyIfShared: true);
        if (frame is null)
        {
            MqttEncoder.WritePublish(writer, this, 0, 0, v5, false, null);
            return;
        }

        writer.Write(frame);
    }

    /// <summary>
    /// The cached QoS 0 frame for a protocol version, built on first use; with
    /// <paramref name="onlyIfShared"/>, null for the very first delivery (the caller encodes that one itself).
    /// </summary>
    public byte[]? GetQos0Frame(bool v5, bool onlyIfShared = false)
    {
        ref var slot = ref v5 ? ref _v5Qos0Frame : ref _v3Qos0Frame;
        var frame = Volatile.Read(ref slot);
        if (frame is not null)
        {
            return frame;
        }

        if (onlyIfShared && Interlocked.Increment(ref _qos0Deliveries) == 1)
        {
            return null;
        }

        frame = MqttEncoder.EncodePublishFrame(this, 0, 0, v5, false, null);
        Volatile.Write(ref slot, frame);
        return frame;
    }

    /// <summary>True when an MQTT 5 message expiry interval has passed.</summary>
    public bool IsExpired(long nowMs) =>
        Properties?.MessageExpiryInterval is { } expiry && nowMs - ReceivedAtMs >= expiry * 1000L;
}
