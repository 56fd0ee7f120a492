using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Trellis.Security.Pki;

namespace Trellis.UnitTests.Security;

public sealed class CertificateSignatureTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.UtcNow;

    [Fact]
    public void Ecdsa_and_rsa_signatures_verify_against_the_issuer_including_an_intermediate()
    {
        using var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var root = Ca("CN=Root", rootKey);
        using var intermediateKey = RSA.Create(2048);
        var intermediateRequest = new CertificateRequest("CN=Intermediate", intermediateKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        intermediateRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using var intermediate = intermediateRequest.Create(root.SubjectName, X509SignatureGenerator.CreateForECDsa(rootKey), Now.AddDays(-1), Now.AddYears(1), [1]);
        using var deviceKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var device = new CertificateRequest("CN=device", deviceKey, HashAlgorithmName.SHA256)
            .Create(intermediate.SubjectName, X509SignatureGenerator.CreateForRSA(intermediateKey, RSASignaturePadding.Pkcs1), Now.AddDays(-1), Now.AddDays(30), [2]);
        using var pssDevice = new CertificateRequest("CN=device", deviceKey, HashAlgorithmName.SHA256)
            .Create(intermediate.SubjectName, X509SignatureGenerator.CreateForRSA(intermediateKey, RSASignaturePadding.Pss), Now.AddDays(-1), Now.AddDays(30), [3]);

        Assert.True(CertificateSignature.IsSignedBy(intermediate, root));
        Assert.True(CertificateSignature.IsSignedBy(device, intermediate));
        Assert.True(CertificateSignature.IsSignedBy(pssDevice, intermediate));
        Assert.False(CertificateSignature.IsSignedBy(device, root));
        Assert.True(CertificateSignature.IsCertificateAuthority(intermediate));
        Assert.False(CertificateSignature.IsCertificateAuthority(device));
    }

    [Fact]
    public void A_certificate_naming_the_issuer_but_signed_by_another_key_is_refused()
    {
        using var realKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var ca = Ca("CN=Acme CA", realKey);
        using var forgerKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var deviceKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var forged = new CertificateRequest("CN=device", deviceKey, HashAlgorithmName.SHA256)
            .Create(ca.SubjectName, X509SignatureGenerator.CreateForECDsa(forgerKey), Now.AddDays(-1), Now.AddDays(30), [9]);
        Assert.False(CertificateSignature.IsSignedBy(forged, ca));
    }

    private static X509Certificate2 Ca(string name, ECDsa key)
    {
        var request = new CertificateRequest(name, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        return request.CreateSelfSigned(Now.AddDays(-1), Now.AddYears(2));
    }
}
