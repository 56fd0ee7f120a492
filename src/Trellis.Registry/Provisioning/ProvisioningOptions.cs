namespace Trellis.Registry.Provisioning;

/// <summary>Fleet provisioning by claim: token lifetime and the pre-provisioning hook's limits. The defaults are AWS IoT's.</summary>
public sealed class ProvisioningOptions
{
    /// <summary>How long a certificate ownership token stays valid; unprovisioned certificates are deleted after it.</summary>
    public TimeSpan OwnershipTokenLifetime { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How long the pre-provisioning webhook may take before the device is refused.</summary>
    public TimeSpan HookTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How often expired ownership tokens and their unprovisioned certificates are swept.</summary>
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromMinutes(1);
}
