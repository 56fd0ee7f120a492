namespace Trellis.IntegrationTests.TestKit;

/// <summary>A provisioned device: its thing, certificate and key files.</summary>
public sealed record ProvisionedDevice(string ThingName, string CertificateId, string CertificateArn, string CertPath, string KeyPath);
