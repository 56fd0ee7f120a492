namespace Trellis.Jobs.Firmware;

/// <summary>
/// A firmware image: its name, the SHA-256 of its bytes (where it is stored), its size and, once
/// signed, its ECDSA P-256 signature (base64 DER) with the signer's certificate (PEM).
/// </summary>
public sealed record FirmwareRecord(string Name, string Sha256, long Size, string? Description, long CreatedMs, string? Signature = null, string? SignerCertificate = null);

/// <summary>A stored patch (zstd patch-from) that turns the image <paramref name="FromSha256"/> into <paramref name="ToSha256"/>.</summary>
public sealed record FirmwareDeltaRecord(string FromSha256, string ToSha256, long Size, long CreatedMs);
