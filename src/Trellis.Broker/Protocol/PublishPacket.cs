namespace Trellis.Broker.Protocol;

/// <summary>A decoded PUBLISH before topic-alias resolution (MQTT 5 §3.3).</summary>
internal readonly record struct PublishPacket(
    string Topic,
    ushort PacketId,
    byte Qos,
    bool Retain,
    bool Dup,
    ushort TopicAlias,
    ReadOnlyMemory<byte> Payload,
    PublishProperties? Properties);
