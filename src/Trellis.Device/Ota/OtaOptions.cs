using System.Security.Cryptography.X509Certificates;

namespace Trellis.Device.Ota;

/// <summary>A verified image, ready for the application to install.</summary>
/// <param name="JobId">The job that brings it.</param>
/// <param name="Version">The version the job document names (null when it names none).</param>
/// <param name="ImagePath">The file holding the image; the agent deletes it once the job has ended.</param>
/// <param name="Sha256">Its SHA-256 (lower-case hex), checked, as its signature was.</param>
/// <param name="FromDelta">Whether it was rebuilt from a delta image rather than downloaded whole.</param>
public sealed record OtaUpdate(string JobId, string? Version, string ImagePath, string Sha256, bool FromDelta);

/// <summary>What the OTA agent needs from the application.</summary>
public sealed class OtaOptions
{
    /// <summary>A folder the agent owns: partial downloads and the state that spans a restart.</summary>
    public required string StateDirectory { get; init; }

    /// <summary>The code-signing certificate images must be signed with (<c>trellis firmware signer</c>, or your own signer's).</summary>
    public required X509Certificate2 SignerCertificate { get; init; }

    /// <summary>The version running now; after an update's restart the agent compares it with the version the job brought.</summary>
    public required string CurrentVersion { get; init; }

    /// <summary>The image running now: with it the agent asks for a delta image (a patch from it) before the full image.</summary>
    public string? CurrentImagePath { get; init; }

    /// <summary>
    /// Installs a verified image (writes it to the inactive slot, marks it to boot) and, usually,
    /// restarts the device. On the next start the agent reports SUCCEEDED once <see cref="CurrentVersion"/>
    /// is the new version and <see cref="SelfTestAsync"/> passes. An exception reports FAILED with its message.
    /// </summary>
    public required Func<OtaUpdate, CancellationToken, Task> InstallAsync { get; init; }

    /// <summary>Checks the new version works after its restart; false rolls back. Without it the update counts as good once it runs.</summary>
    public Func<CancellationToken, Task<bool>>? SelfTestAsync { get; init; }

    /// <summary>Goes back to the previous image (named by its version) after a failed self-test; the job is then FAILED.</summary>
    public Func<string, CancellationToken, Task>? RollbackAsync { get; init; }

    /// <summary>Attempts at a download (each resumes where the last stopped) before the job is FAILED.</summary>
    public int MaxDownloadAttempts { get; init; } = 5;

    /// <summary>For HTTPS downloads: the CA the server's certificate chains to (default: the device's <see cref="DeviceOptions.CaCertificate"/>).</summary>
    public X509Certificate2? DownloadCaCertificate { get; init; }
}
