namespace Trellis.Broker.Protocol;

/// <summary>
/// One application message as routed by the broker. Immutable once published: the same instance is
/// queued to every subscriber, and its encoded QoS 0 frames are cached for the fan-out.
/// </summary>
internal sealed class MqttMessage
{
    private byte[]? _v3Qos0Frame;
    private byte[]? _v5Qos0Frame;

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

    /// <summary>The cached QoS 0 PUBLISH frame for a protocol version, built on first use.</summary>
    public byte[] GetQos0Frame(bool v5, bool retainFlag)
    {
        // Retained-on-subscribe deliveries carry RETAIN=1 and are rare: encode those per call.
        if (retainFlag)
        {
            return MqttEncoder.EncodePublishFrame(this, 0, 0, v5, true, null);
        }

        ref var slot = ref v5 ? ref _v5Qos0Frame : ref _v3Qos0Frame;
        var frame = Volatile.Read(ref slot);
        if (frame is null)
        {
            frame = MqttEncoder.EncodePublishFrame(this, 0, 0, v5, false, null);
            Volatile.Write(ref slot, frame);
        }

        return frame;
    }

    /// <summary>True when an MQTT 5 message expiry interval has passed.</summary>
    public bool IsExpired(long nowMs) =>
        Properties?.MessageExpiryInterval is { } expiry && nowMs - ReceivedAtMs >= expiry * 1000L;
}
