namespace Trellis.Storage;

/// <summary>Where Trellis keeps its state. Everything lives under one folder so a backup is a copy.</summary>
public sealed class DataFolder
{
    /// <summary>
    /// Opens (creating) the data folder private to the server's user: the folder and its
    /// subfolders 0700, every file in it 0600, whatever an earlier version or a copy left; files
    /// created afterwards are private by the process's umask (<see cref="PrivateFiles"/>).
    /// </summary>
    public DataFolder(string root)
    {
        Root = System.IO.Path.GetFullPath(root);
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(Root);
            Directory.CreateDirectory(PkiDirectory);
            return;
        }

        PrivateFiles.Apply();
        const UnixFileMode Folder = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        const UnixFileMode File = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        Directory.CreateDirectory(Root, Folder);
        Directory.CreateDirectory(PkiDirectory, Folder);
        System.IO.File.SetUnixFileMode(Root, Folder);
        foreach (var entry in new DirectoryInfo(Root).EnumerateFileSystemInfos("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint }))
        {
            try
            {
                entry.UnixFileMode = entry is DirectoryInfo ? Folder : File;
            }
            catch (Exception e) when (e is UnauthorizedAccessException or IOException)
            {
                // Not ours (another user's file left in the folder): it keeps its mode; ours are private.
            }
        }
    }

    public string Root { get; }

    public string RegistryPath => System.IO.Path.Combine(Root, "trellis.db");

    /// <summary>Device shadows: a database of its own, so shadow writes never wait for registry writes.</summary>
    public string ShadowsPath => System.IO.Path.Combine(Root, "shadows.db");

    /// <summary>Persistent MQTT sessions and the messages they are owed: a database of its own, written by the broker's group-commit journal.</summary>
    public string SessionsPath => System.IO.Path.Combine(Root, "sessions.db");

    /// <summary>The durable outbox of external rule actions.</summary>
    public string OutboxPath => System.IO.Path.Combine(Root, "outbox.db");

    /// <summary>Jobs, their executions and templates.</summary>
    public string JobsPath => System.IO.Path.Combine(Root, "jobs.db");

    /// <summary>Firmware images, one file per SHA-256.</summary>
    public string FirmwareDirectory => System.IO.Path.Combine(Root, "firmware");

    /// <summary>The key that signs firmware download links (32 random bytes).</summary>
    public string PresignKeyPath => System.IO.Path.Combine(Root, "presign.key");

    /// <summary>The time-series store (DuckDB).</summary>
    /// <summary>The fleet index (Lucene), rebuilt from the stores at start-up.</summary>
    public string IndexDirectory => System.IO.Path.Combine(Root, "index");

    public string TelemetryPath => System.IO.Path.Combine(Root, "telemetry.duckdb");

    /// <summary>CA and server key material (mode 0600 files).</summary>
    public string PkiDirectory => System.IO.Path.Combine(Root, "pki");

    /// <summary>The CA certificate devices trust; a copy of pki/ca.pem at the root for convenience.</summary>
    public string CaCertificatePath => System.IO.Path.Combine(Root, "ca.pem");

    /// <summary>The AES-256 key that seals API users' secrets in the registry database (mode 0600; back it up with the folder).</summary>
    public string SecretsKeyPath => System.IO.Path.Combine(Root, "secrets.key");

    /// <summary>An AWS shared-credentials file with the admin key under profile "trellis".</summary>
    public string CredentialsPath => System.IO.Path.Combine(Root, "credentials");
}
