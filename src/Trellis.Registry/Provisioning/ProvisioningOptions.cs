namespace Trellis.Registry.Provisioning;

/// <summary>Fleet provisioning by claim: token lifetime and the pre-provisioning hook's limits. The defaults are AWS IoT's.</summary>
public sealed class ProvisioningOptions
{
    /// <summary>How long a certificate ownership token stays valid; unprovisioned certificates are deleted after it.</summary>
    public TimeSpan OwnershipTokenLifetime { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How long the pre-provisioning webhook may take before the device is refused.</summary>
    public TimeSpan HookTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Key pairs the server may make for one principal (a claim certificate, a token, a key) per
    /// second through <c>$aws/certificates/create</c>, after a burst of
    /// <see cref="KeyBurstPerPrincipal"/>. An RSA-2048 key costs about 0.2 s of CPU: one claim
    /// certificate must not be able to keep the server busy making keys.
    /// </summary>
    public double KeysPerSecondPerPrincipal { get; set; } = 2;

    public int KeyBurstPerPrincipal { get; set; } = 10;

    /// <summary>Key pairs the server may make per second for all principals together (5 ≈ one core), after a burst of <see cref="KeyBurst"/>.</summary>
    public double KeysPerSecond { get; set; } = 5;

    public int KeyBurst { get; set; } = 20;

    /// <summary>Certificates signed from a device's CSR (<c>$aws/certificates/create-from-csr</c>, about 1 ms of CPU each) per second for one principal, after a burst.</summary>
    public double CsrCertificatesPerSecondPerPrincipal { get; set; } = 50;

    public int CsrCertificateBurstPerPrincipal { get; set; } = 100;

    /// <summary>Certificates signed from CSRs per second for all principals together, after a burst.</summary>
    public double CsrCertificatesPerSecond { get; set; } = 200;

    public int CsrCertificateBurst { get; set; } = 400;

    /// <summary>How often expired ownership tokens and their unprovisioned certificates are swept.</summary>
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromMinutes(1);
}
