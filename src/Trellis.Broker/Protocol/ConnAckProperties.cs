namespace Trellis.Broker.Protocol;

/// <summary>What the server tells an MQTT 5 client in CONNACK (§3.2.2.3).</summary>
internal sealed record ConnAckProperties
{
    public uint? SessionExpiryInterval { get; init; }

    public uint MaximumPacketSize { get; init; }

    public ushort TopicAliasMaximum { get; init; }

    /// <summary>QoS 1/2 publishes the client may have unacknowledged towards the server (§3.2.2.3.3); 0 = not sent (65 535).</summary>
    public ushort ReceiveMaximum { get; init; }

    public string? AssignedClientIdentifier { get; init; }

    public ushort? ServerKeepAlive { get; init; }

    public string? ReasonString { get; init; }
}
