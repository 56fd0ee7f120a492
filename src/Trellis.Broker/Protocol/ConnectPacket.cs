namespace Trellis.Broker.Protocol;

/// <summary>A decoded CONNECT (MQTT 5 §3.1).</summary>
internal sealed class ConnectPacket
{
    /// <summary>4 for MQTT 3.1.1, 5 for MQTT 5.0 (3 for MQTT 3.1, treated as 3.1.1).</summary>
    public byte ProtocolLevel { get; set; }

    public bool IsV5 => ProtocolLevel == 5;

    public string ClientId { get; set; } = string.Empty;

    public bool CleanStart { get; set; }

    public ushort KeepAliveSeconds { get; set; }

    public string? UserName { get; set; }

    public byte[]? Password { get; set; }

    public MqttMessage? Will { get; set; }

    public uint WillDelaySeconds { get; set; }

    public uint SessionExpirySeconds { get; set; }

    public ushort ReceiveMaximum { get; set; } = ushort.MaxValue;

    /// <summary>The largest packet the client accepts; 0 = no limit given.</summary>
    public uint MaximumPacketSize { get; set; }

    public ushort TopicAliasMaximum { get; set; }

    public bool RequestProblemInformation { get; set; } = true;

    public string? AuthenticationMethod { get; set; }

    public IReadOnlyList<UserProperty>? UserProperties { get; set; }
}
