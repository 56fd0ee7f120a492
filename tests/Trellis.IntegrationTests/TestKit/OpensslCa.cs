namespace Trellis.IntegrationTests.TestKit;

/// <summary>
/// A company's own CA made with the openssl command line, the way operators make one: an ECDSA
/// P-256 root, device certificates signed by it, and the verification certificate that proves
/// possession of its key to the server.
/// </summary>
public sealed class OpensslCa
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private OpensslCa(string directory, string name)
    {
        Directory = directory;
        Name = name;
    }

    public string Directory { get; }

    public string Name { get; }

    public string KeyPath => Path.Combine(Directory, $"{Name}.key");

    public string CertPath => Path.Combine(Directory, $"{Name}.pem");

    public string Pem => File.ReadAllText(CertPath);

    /// <summary>A new self-signed CA (basicConstraints CA:TRUE) in <paramref name="directory"/>.</summary>
    public static async Task<OpensslCa> CreateAsync(string directory, string name, CancellationToken cancellationToken)
    {
        System.IO.Directory.CreateDirectory(directory);
        var ca = new OpensslCa(directory, name);
        await RunAsync(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", ca.KeyPath], cancellationToken);
        await RunAsync(["req", "-x509", "-new", "-key", ca.KeyPath, "-sha256", "-days", "365", "-subj", $"/CN={name}/O=Acme",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", ca.CertPath], cancellationToken);
        return ca;
    }

    /// <summary>A certificate for <paramref name="subject"/> (e.g. <c>/CN=sensor-1/C=DE</c>) signed by this CA, with its key.</summary>
    public async Task<(string CertPath, string KeyPath)> IssueAsync(string fileName, string subject, CancellationToken cancellationToken)
    {
        var key = Path.Combine(Directory, $"{fileName}.key");
        var csr = Path.Combine(Directory, $"{fileName}.csr");
        var cert = Path.Combine(Directory, $"{fileName}.pem");
        await RunAsync(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key], cancellationToken);
        await RunAsync(["req", "-new", "-key", key, "-subj", subject, "-out", csr], cancellationToken);
        await RunAsync(["x509", "-req", "-in", csr, "-CA", CertPath, "-CAkey", KeyPath, "-CAcreateserial", "-days", "30", "-sha256", "-out", cert], cancellationToken);
        return (cert, key);
    }

    /// <summary>A self-signed device certificate, for RegisterCertificateWithoutCA.</summary>
    public static async Task<(string CertPath, string KeyPath)> SelfSignedAsync(string directory, string fileName, string subject, CancellationToken cancellationToken)
    {
        System.IO.Directory.CreateDirectory(directory);
        var key = Path.Combine(directory, $"{fileName}.key");
        var cert = Path.Combine(directory, $"{fileName}.pem");
        await RunAsync(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key], cancellationToken);
        await RunAsync(["req", "-x509", "-new", "-key", key, "-sha256", "-days", "30", "-subj", subject, "-out", cert], cancellationToken);
        return (cert, key);
    }

    private static async Task RunAsync(string[] args, CancellationToken cancellationToken)
    {
        var result = await ExternalTool.RunAsync("openssl", args, Timeout, cancellationToken: cancellationToken);
        Assert.True(result.ExitCode == 0, $"openssl {string.Join(' ', args)} failed: {result.Output}");
    }
}
