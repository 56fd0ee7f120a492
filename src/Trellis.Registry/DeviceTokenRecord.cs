namespace Trellis.Registry;

/// <summary>A device token as stored: never the secret, only its salted hash.</summary>
public sealed record DeviceTokenRecord(string Id, string Arn, string ThingName, string? Description, long CreatedMs, long? ExpiresMs, long? RevokedMs)
{
    /// <summary>ACTIVE, EXPIRED or REVOKED at <paramref name="nowMs"/>.</summary>
    public string StatusAt(long nowMs) => RevokedMs is not null ? "REVOKED" : ExpiresMs is { } expires && expires <= nowMs ? "EXPIRED" : "ACTIVE";
}
