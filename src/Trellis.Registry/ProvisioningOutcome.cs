namespace Trellis.Registry;

/// <summary>What a provisioning template created or updated.</summary>
public sealed record ProvisioningOutcome(
    string? ThingName,
    CertificateRecord? Certificate,
    IReadOnlyDictionary<string, string> DeviceConfiguration,
    IReadOnlyDictionary<string, string> ResourceArns);
