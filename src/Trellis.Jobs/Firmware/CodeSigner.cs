using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Trellis.Jobs.Firmware;

/// <summary>
/// Code signing of firmware images with ECDSA P-256 over the image's SHA-256 (AWS IoT's
/// "SHA256withECDSA"; the signature is DER, as <c>openssl dgst -sha256 -verify</c> reads it).
/// Trellis's own signing key lives in the data folder (<c>code-signing.key</c>, 0600) with a
/// self-signed certificate (<c>code-signing.pem</c>) that devices are given to verify against.
/// A signature made elsewhere (an HSM, a release pipeline) is accepted with its signer's
/// certificate after it verifies.
/// </summary>
public sealed class CodeSigner : IDisposable
{
    public const string Algorithm = "SHA256withECDSA";
    private readonly ECDsa _key;

    private CodeSigner(ECDsa key, X509Certificate2 certificate)
    {
        _key = key;
        Certificate = certificate;
    }

    public X509Certificate2 Certificate { get; }

    public string CertificatePem => Certificate.ExportCertificatePem();

    /// <summary>Loads the signing key and certificate from <paramref name="directory"/>, creating them on first use.</summary>
    public static CodeSigner LoadOrCreate(string directory, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(time);
        var keyPath = Path.Combine(directory, "code-signing.key");
        var certPath = Path.Combine(directory, "code-signing.pem");
        if (File.Exists(keyPath) && File.Exists(certPath))
        {
            var existing = ECDsa.Create();
            existing.ImportFromPem(File.ReadAllText(keyPath));
            return new CodeSigner(existing, X509Certificate2.CreateFromPem(File.ReadAllText(certPath)));
        }

        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=Trellis firmware signing, O=Trellis", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.3")], false)); // code signing
        var now = time.GetUtcNow();
        using var certificate = request.CreateSelfSigned(now.AddMinutes(-5), now.AddYears(20));
        var pem = certificate.ExportCertificatePem();
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var writer = new StreamWriter(new FileStream(keyPath, options)))
        {
            writer.Write(key.ExportPkcs8PrivateKeyPem());
            writer.Flush();
            ((FileStream)writer.BaseStream).Flush(flushToDisk: true);
        }

        File.WriteAllText(certPath, pem + "\n");
        return new CodeSigner(key, X509Certificate2.CreateFromPem(pem));
    }

    /// <summary>The DER signature of an image whose SHA-256 is <paramref name="sha256"/>.</summary>
    public byte[] Sign(ReadOnlySpan<byte> sha256) => _key.SignHash(sha256, DSASignatureFormat.Rfc3279DerSequence);

    /// <summary>
    /// Whether <paramref name="signature"/> (DER, or the 64-byte r||s form) is a valid ECDSA P-256
    /// signature of <paramref name="sha256"/> by the key in <paramref name="certificatePem"/>; the
    /// reason when it is not.
    /// </summary>
    public static string? Refusal(string certificatePem, ReadOnlySpan<byte> sha256, ReadOnlySpan<byte> signature)
    {
        X509Certificate2 certificate;
        try
        {
            certificate = X509Certificate2.CreateFromPem(certificatePem);
        }
        catch (CryptographicException e)
        {
            return $"the signer certificate is not a PEM X.509 certificate ({e.Message})";
        }

        using (certificate)
        {
            using var key = certificate.GetECDsaPublicKey();
            if (key is null || key.KeySize != 256)
            {
                return "the signer certificate's key is not ECDSA P-256";
            }

            var format = signature.Length == 64 ? DSASignatureFormat.IeeeP1363FixedFieldConcatenation : DSASignatureFormat.Rfc3279DerSequence;
            return key.VerifyHash(sha256, signature, format) ? null : "the signature does not verify against the image's SHA-256 with the signer certificate's key";
        }
    }

    public void Dispose()
    {
        _key.Dispose();
        Certificate.Dispose();
    }
}
