namespace Trellis.Jobs.Firmware;

/// <summary>
/// A firmware image: its name, the SHA-256 of its bytes (where it is stored), its size and, once
/// signed, its ECDSA P-256 signature (base64 DER) with the signer's certificate (PEM).
/// </summary>
public sealed record FirmwareRecord(string Name, string Sha256, long Size, string? Description, long CreatedMs, string? Signature = null, string? SignerCertificate = null);

/// <summary>A stored patch (zstd patch-from) that turns the image <paramref name="FromSha256"/> into <paramref name="ToSha256"/>.</summary>
public sealed record FirmwareDeltaRecord(string FromSha256, string ToSha256, long Size, long CreatedMs);

/// <summary>A file of a stream: its id (0–255) and where its bytes are (AWS: an S3 object; Trellis: <c>key</c> names a firmware image).</summary>
public sealed record StreamFileRecord(int FileId, string Bucket, string Key, string? S3Version);

/// <summary>An AWS IoT stream: files devices fetch in blocks over MQTT (<c>$aws/things/{thing}/streams/{streamId}/…</c>).</summary>
public sealed record StreamRecord(string StreamId, string Arn, string? Description, IReadOnlyList<StreamFileRecord> Files, string? RoleArn, int Version, long CreatedMs, long UpdatedMs);
