using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Trellis.Security.Pki;

/// <summary>
/// Trellis's built-in CA: an ECDSA P-256 root that signs the server certificate and device
/// certificates (generated keys or CSRs). Stored as PEM files in the data folder.
/// </summary>
public sealed class CertificateAuthority : IDisposable
{
    private readonly X509Certificate2 _certificate;
    private readonly ECDsa _key;
    private readonly TimeProvider _time;

    private CertificateAuthority(X509Certificate2 certificate, ECDsa key, TimeProvider time)
    {
        _certificate = certificate;
        _key = key;
        _time = time;
    }

    public X509Certificate2 Certificate => _certificate;

    public string CertificatePem => _certificate.ExportCertificatePem();

    /// <summary>Loads the CA from <paramref name="directory"/>, creating it on first use.</summary>
    public static CertificateAuthority LoadOrCreate(string directory, TimeProvider time)
    {
        var certPath = Path.Combine(directory, "ca.pem");
        var keyPath = Path.Combine(directory, "ca.key");
        if (File.Exists(certPath) && File.Exists(keyPath))
        {
            var cert = X509Certificate2.CreateFromPem(File.ReadAllText(certPath));
            var existingKey = ECDsa.Create();
            existingKey.ImportFromPem(File.ReadAllText(keyPath));
            return new CertificateAuthority(cert, existingKey, time);
        }

        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=Trellis Root CA, O=Trellis", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 1, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var now = time.GetUtcNow();
        var ca = request.CreateSelfSigned(now.AddMinutes(-5), now.AddYears(20));
        var pem = ca.ExportCertificatePem();
        WriteSecret(keyPath, key.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(certPath, pem + "\n");
        return new CertificateAuthority(X509Certificate2.CreateFromPem(pem), key, time);
    }

    /// <summary>The server's TLS certificate (with key), reused while it names every host in <paramref name="hostNames"/>.</summary>
    public X509Certificate2 LoadOrCreateServerCertificate(string directory, IReadOnlyCollection<string> hostNames)
    {
        var certPath = Path.Combine(directory, "server.pem");
        var keyPath = Path.Combine(directory, "server.key");
        if (File.Exists(certPath) && File.Exists(keyPath))
        {
            var existing = X509Certificate2.CreateFromPemFile(certPath, keyPath);
            var names = SubjectAlternativeNames(existing);
            if (hostNames.All(names.Contains) && existing.NotAfter > _time.GetUtcNow().AddDays(30).UtcDateTime)
            {
                return Exportable(existing);
            }

            existing.Dispose();
        }

        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=" + hostNames.First(), key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var host in hostNames)
        {
            if (IPAddress.TryParse(host, out var ip))
            {
                san.AddIpAddress(ip);
            }
            else
            {
                san.AddDnsName(host);
            }
        }

        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(_certificate, true, false));
        var now = _time.GetUtcNow();
        using var signed = request.Create(_certificate.SubjectName, X509SignatureGenerator.CreateForECDsa(_key), now.AddMinutes(-5), now.AddYears(2), RandomSerial());
        using var withKey = signed.CopyWithPrivateKey(key);
        File.WriteAllText(certPath, withKey.ExportCertificatePem() + "\n");
        WriteSecret(keyPath, key.ExportPkcs8PrivateKeyPem());
        return Exportable(withKey);
    }

    /// <summary>A new RSA-2048 key pair and a device certificate for it (CreateKeysAndCertificate).</summary>
    public (X509Certificate2 Certificate, string PublicKeyPem, string PrivateKeyPem) IssueWithNewKey(TimeSpan? validity = null)
    {
        using var rsa = RSA.Create(2048);
        var request = new CertificateRequest("CN=AWS IoT Certificate", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var certificate = SignDevice(request, validity);
        return (certificate, rsa.ExportSubjectPublicKeyInfoPem(), rsa.ExportRSAPrivateKeyPem());
    }

    /// <summary>Signs a PEM CSR (CreateCertificateFromCsr). The CSR's signature is verified first.</summary>
    public bool TryIssueFromCsr(string csrPem, out X509Certificate2? certificate, out string error)
    {
        certificate = null;
        error = string.Empty;
        CertificateRequest request;
        try
        {
            request = CertificateRequest.LoadSigningRequestPem(csrPem, HashAlgorithmName.SHA256, CertificateRequestLoadOptions.Default, RSASignaturePadding.Pkcs1);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            error = $"certificateSigningRequest is not a valid PEM PKCS#10 request with a valid signature: {e.Message}";
            return false;
        }

        // Extensions requested in the CSR are not trusted: the CA decides them.
        request.CertificateExtensions.Clear();
        certificate = SignDevice(request);
        return true;
    }

    private X509Certificate2 SignDevice(CertificateRequest request, TimeSpan? validity = null)
    {
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(_certificate, true, false));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var now = _time.GetUtcNow();

        // AWS IoT device certificates are valid until 2049-12-31; a provisioning claim for minutes.
        var notAfter = validity is { } lifetime ? now + lifetime : new DateTimeOffset(2049, 12, 31, 23, 59, 59, TimeSpan.Zero);
        var generator = X509SignatureGenerator.CreateForECDsa(_key);
        return request.Create(_certificate.SubjectName, generator, now.AddMinutes(-5), notAfter, RandomSerial());
    }

    /// <summary>AWS IoT's certificate id: the SHA-256 of the DER certificate, 64 lower-case hex characters.</summary>
    public static string CertificateId(X509Certificate2 certificate) =>
        Convert.ToHexStringLower(SHA256.HashData(certificate.RawData));

    /// <summary>True when <paramref name="certificate"/> chains to this CA and is within its validity.</summary>
    public bool Verifies(X509Certificate2 certificate)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(_certificate);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationTime = _time.GetUtcNow().UtcDateTime;
        chain.ChainPolicy.VerificationTimeIgnored = false;
        return chain.Build(certificate);
    }

    public void Dispose()
    {
        _certificate.Dispose();
        _key.Dispose();
    }

    private static HashSet<string> SubjectAlternativeNames(X509Certificate2 certificate)
    {
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var extension in certificate.Extensions)
        {
            if (extension is X509SubjectAlternativeNameExtension san)
            {
                foreach (var dns in san.EnumerateDnsNames())
                {
                    names.Add(dns);
                }

                foreach (var ip in san.EnumerateIPAddresses())
                {
                    names.Add(ip.ToString());
                }
            }
        }

        return names;
    }

    private static byte[] RandomSerial()
    {
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F; // positive INTEGER
        return serial;
    }

    // Kestrel on Linux needs a certificate whose key is usable by the TLS stack: round-trip via PKCS#12.
    private static X509Certificate2 Exportable(X509Certificate2 certificate) =>
        X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);

    private static void WriteSecret(string path, string content) => Trellis.Device.OwnerOnlyFile.Write(path, content + "\n");
}
