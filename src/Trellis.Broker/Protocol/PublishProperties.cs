namespace Trellis.Broker.Protocol;

/// <summary>MQTT 5 PUBLISH properties that travel with a message (§3.3.2.3).</summary>
internal sealed record PublishProperties
{
    public byte? PayloadFormatIndicator { get; init; }

    public uint? MessageExpiryInterval { get; init; }

    public string? ContentType { get; init; }

    public string? ResponseTopic { get; init; }

    public byte[]? CorrelationData { get; init; }

    public IReadOnlyList<UserProperty>? UserProperties { get; init; }

    public bool IsEmpty =>
        PayloadFormatIndicator is null && MessageExpiryInterval is null && ContentType is null
        && ResponseTopic is null && CorrelationData is null && (UserProperties is null || UserProperties.Count == 0);
}
