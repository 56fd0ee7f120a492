namespace Trellis.Registry.Provisioning;

/// <summary>Fleet provisioning by claim: token lifetime and the pre-provisioning hook's limits. The defaults are AWS IoT's.</summary>
public sealed class ProvisioningOptions
{
    /// <summary>How long a certificate ownership token stays valid; unprovisioned certificates are deleted after it.</summary>
    public TimeSpan OwnershipTokenLifetime { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How long the pre-provisioning webhook may take before the device is refused.</summary>
    public TimeSpan HookTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Certificates one principal (a claim certificate, a token, a key) may have made per second
    /// through <c>$aws/certificates/create*</c> and CreateProvisioningClaim, after a burst of
    /// <see cref="CertificateBurstPerPrincipal"/>. Each new key pair costs tens of milliseconds of
    /// CPU: one claim certificate must not be able to keep the server busy making keys.
    /// </summary>
    public double CertificatesPerSecondPerPrincipal { get; set; } = 2;

    public int CertificateBurstPerPrincipal { get; set; } = 10;

    /// <summary>Certificates all principals together may have made per second, after a burst of <see cref="CertificateBurst"/>.</summary>
    public double CertificatesPerSecond { get; set; } = 10;

    public int CertificateBurst { get; set; } = 40;

    /// <summary>How often expired ownership tokens and their unprovisioned certificates are swept.</summary>
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromMinutes(1);
}
