namespace Trellis.Broker.Protocol;

/// <summary>A decoded PUBACK, PUBREC, PUBREL or PUBCOMP (MQTT 5 §3.4–3.7).</summary>
internal readonly record struct AckPacket(ushort PacketId, byte ReasonCode);
