namespace Trellis.Registry;

/// <summary>
/// A device token as stored: its salted hash, never the secret, unless it is also the thing's DTLS
/// pre-shared key (<paramref name="DtlsPsk"/>): a PSK handshake needs the key itself, so such a
/// token is also kept sealed (AES-GCM under the data folder's <c>secrets.key</c>).
/// </summary>
public sealed record DeviceTokenRecord(string Id, string Arn, string ThingName, string? Description, long CreatedMs, long? ExpiresMs, long? RevokedMs, bool DtlsPsk = false)
{
    /// <summary>ACTIVE, EXPIRED or REVOKED at <paramref name="nowMs"/>.</summary>
    public string StatusAt(long nowMs) => RevokedMs is not null ? "REVOKED" : ExpiresMs is { } expires && expires <= nowMs ? "EXPIRED" : "ACTIVE";
}
