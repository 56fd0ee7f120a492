namespace Trellis.Broker.Protocol;

/// <summary>A decoded UNSUBSCRIBE (MQTT 5 §3.10).</summary>
internal sealed class UnsubscribePacket
{
    public ushort PacketId { get; set; }

    public List<string> Filters { get; } = [];
}
