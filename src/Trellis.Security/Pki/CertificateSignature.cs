using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Trellis.Security.Pki;

/// <summary>
/// Checks that one certificate was signed by another's key. X509Chain cannot be told to treat an
/// intermediate CA as a trust anchor, and a registered CA may be an intermediate, so the signature
/// over the TBSCertificate is verified directly (ECDSA and RSA PKCS#1 v1.5 / PSS).
/// </summary>
public static class CertificateSignature
{
    /// <summary>True when <paramref name="certificate"/> names <paramref name="issuer"/> as issuer and carries a valid signature by its key.</summary>
    public static bool IsSignedBy(X509Certificate2 certificate, X509Certificate2 issuer)
    {
        if (!certificate.IssuerName.RawData.AsSpan().SequenceEqual(issuer.SubjectName.RawData))
        {
            return false;
        }

        try
        {
            var reader = new AsnReader(certificate.RawData, AsnEncodingRules.DER);
            var outer = reader.ReadSequence();
            var tbs = outer.ReadEncodedValue().ToArray();
            var algorithm = outer.ReadSequence();
            var oid = algorithm.ReadObjectIdentifier();
            var signature = outer.ReadBitString(out _);
            return oid switch
            {
                "1.2.840.10045.4.3.2" => VerifyEcdsa(issuer, tbs, signature, HashAlgorithmName.SHA256),
                "1.2.840.10045.4.3.3" => VerifyEcdsa(issuer, tbs, signature, HashAlgorithmName.SHA384),
                "1.2.840.10045.4.3.4" => VerifyEcdsa(issuer, tbs, signature, HashAlgorithmName.SHA512),
                "1.2.840.113549.1.1.11" => VerifyRsa(issuer, tbs, signature, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1),
                "1.2.840.113549.1.1.12" => VerifyRsa(issuer, tbs, signature, HashAlgorithmName.SHA384, RSASignaturePadding.Pkcs1),
                "1.2.840.113549.1.1.13" => VerifyRsa(issuer, tbs, signature, HashAlgorithmName.SHA512, RSASignaturePadding.Pkcs1),
                "1.2.840.113549.1.1.10" => VerifyRsaPss(issuer, tbs, signature, algorithm),
                _ => false,
            };
        }
        catch (Exception e) when (e is AsnContentException or CryptographicException)
        {
            return false;
        }
    }

    /// <summary>True when the certificate is a CA (basic constraints with cA = true).</summary>
    public static bool IsCertificateAuthority(X509Certificate2 certificate) =>
        certificate.Extensions.OfType<X509BasicConstraintsExtension>().Any(b => b.CertificateAuthority);

    private static bool VerifyEcdsa(X509Certificate2 issuer, byte[] data, byte[] signature, HashAlgorithmName hash)
    {
        using var key = issuer.GetECDsaPublicKey();
        return key is not null && key.VerifyData(data, signature, hash, DSASignatureFormat.Rfc3279DerSequence);
    }

    private static bool VerifyRsa(X509Certificate2 issuer, byte[] data, byte[] signature, HashAlgorithmName hash, RSASignaturePadding padding)
    {
        using var key = issuer.GetRSAPublicKey();
        return key is not null && key.VerifyData(data, signature, hash, padding);
    }

    private static bool VerifyRsaPss(X509Certificate2 issuer, byte[] data, byte[] signature, AsnReader algorithm)
    {
        // RSASSA-PSS-params: the hash is the first, explicitly tagged field; SHA-1 when absent.
        var hash = HashAlgorithmName.SHA1;
        if (algorithm.HasData)
        {
            var parameters = algorithm.ReadSequence();
            if (parameters.HasData && parameters.PeekTag().HasSameClassAndValue(new Asn1Tag(TagClass.ContextSpecific, 0)))
            {
                var hashAlgorithm = parameters.ReadSequence(new Asn1Tag(TagClass.ContextSpecific, 0)).ReadSequence();
                hash = hashAlgorithm.ReadObjectIdentifier() switch
                {
                    "2.16.840.1.101.3.4.2.1" => HashAlgorithmName.SHA256,
                    "2.16.840.1.101.3.4.2.2" => HashAlgorithmName.SHA384,
                    "2.16.840.1.101.3.4.2.3" => HashAlgorithmName.SHA512,
                    _ => HashAlgorithmName.SHA1,
                };
            }
        }

        return VerifyRsa(issuer, data, signature, hash, RSASignaturePadding.Pss);
    }
}
