namespace Trellis.Registry;

/// <summary>A device certificate as stored in the registry.</summary>
public sealed record CertificateRecord(string Id, string Arn, string Pem, string Status, string? CaCertificateId, long CreatedMs, long UpdatedMs);
