using Trellis.Broker.Protocol;

namespace Trellis.Broker.Persistence;

/// <summary>MQTT 5 message properties' JSON form in the database. Field names are stored: never rename them.</summary>
internal sealed record StoredProperties(byte? PayloadFormat, uint? Expiry, string? ContentType, string? ResponseTopic, byte[]? Correlation, List<string[]>? User)
{
    public static StoredProperties From(PublishProperties p) => new(
        p.PayloadFormatIndicator,
        p.MessageExpiryInterval,
        p.ContentType,
        p.ResponseTopic,
        p.CorrelationData,
        p.UserProperties?.Select(u => new[] { u.Name, u.Value }).ToList());

    public PublishProperties ToProperties() => new()
    {
        PayloadFormatIndicator = PayloadFormat,
        MessageExpiryInterval = Expiry,
        ContentType = ContentType,
        ResponseTopic = ResponseTopic,
        CorrelationData = Correlation,
        UserProperties = User?.Where(u => u.Length == 2).Select(u => new UserProperty(u[0], u[1])).ToList(),
    };
}
