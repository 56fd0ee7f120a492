namespace Trellis.Registry;

/// <summary>A freshly issued certificate; <see cref="PrivateKeyPem"/> is shown once and never stored.</summary>
public sealed record NewCertificate(CertificateRecord Certificate, string? PublicKeyPem, string? PrivateKeyPem);
