namespace Trellis.Broker.Protocol;

/// <summary>A decoded SUBSCRIBE (MQTT 5 §3.8).</summary>
internal sealed class SubscribePacket
{
    public ushort PacketId { get; set; }

    public uint? SubscriptionIdentifier { get; set; }

    public List<TopicSubscription> Filters { get; } = [];
}
