using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using Trellis.Registry;

namespace Trellis.Api.Aws.Iot;

/// <summary>Device certificates: CreateKeysAndCertificate, CreateCertificateFromCsr, DescribeCertificate, ListCertificates, UpdateCertificate, DeleteCertificate.</summary>
public sealed partial class IotOperations
{
    public Task<CreateKeysAndCertificateResponse> CreateKeysAndCertificateAsync(CreateKeysAndCertificateRequest request, CancellationToken cancellationToken)
    {
        var created = registry.CreateKeysAndCertificate(request.SetAsActive ?? false);
        return DoneAsync(new CreateKeysAndCertificateResponse
        {
            CertificateArn = created.Certificate.Arn,
            CertificateId = created.Certificate.Id,
            CertificatePem = created.Certificate.Pem,
            KeyPair = new KeyPair { PublicKey = created.PublicKeyPem, PrivateKey = created.PrivateKeyPem },
        });
    }

    public Task<CreateCertificateFromCsrResponse> CreateCertificateFromCsrAsync(CreateCertificateFromCsrRequest request, CancellationToken cancellationToken)
    {
        var created = Ok(registry.CreateCertificateFromCsr(request.CertificateSigningRequest, request.SetAsActive ?? false));
        return DoneAsync(new CreateCertificateFromCsrResponse
        {
            CertificateArn = created.Certificate.Arn,
            CertificateId = created.Certificate.Id,
            CertificatePem = created.Certificate.Pem,
        });
    }

    public Task<DescribeCertificateResponse> DescribeCertificateAsync(DescribeCertificateRequest request, CancellationToken cancellationToken)
    {
        var c = Ok(registry.DescribeCertificate(request.CertificateId));
        return DoneAsync(new DescribeCertificateResponse { CertificateDescription = Description(c) });
    }

    public Task<ListCertificatesResponse> ListCertificatesAsync(ListCertificatesRequest request, CancellationToken cancellationToken)
    {
        var page = registry.ListCertificates(request.Marker, request.PageSize, request.AscendingOrder ?? false);
        return DoneAsync(new ListCertificatesResponse
        {
            Certificates = Certificates(page),
            NextMarker = page.NextToken,
        });
    }

    public Task<AwsEmpty> UpdateCertificateAsync(UpdateCertificateRequest request, CancellationToken cancellationToken) =>
        EmptyAsync(registry.UpdateCertificate(request.CertificateId, request.NewStatus));

    public Task<AwsEmpty> DeleteCertificateAsync(DeleteCertificateRequest request, CancellationToken cancellationToken) =>
        EmptyAsync(registry.DeleteCertificate(request.CertificateId, request.ForceDelete ?? false));

    private CertificateDescription Description(CertificateRecord c) =>
        CertificateView<CertificateDescription>(c.Arn, c.Id, c.Status, c.Pem, (c.CreatedMs, c.UpdatedMs), "DEFAULT") with { CaCertificateId = c.CaCertificateId };

    /// <summary>The members a device certificate's and a CA certificate's descriptions share.</summary>
    private T CertificateView<T>(string arn, string id, string status, string pem, (long Created, long Updated) times, string mode)
        where T : ICertificateView, new()
    {
        using var x509 = X509Certificate2.CreateFromPem(pem);
        return new T
        {
            CertificateArn = arn,
            CertificateId = id,
            Status = status,
            CertificatePem = pem,
            OwnedBy = registry.Options.AccountId,
            CreationDate = DateTimeOffset.FromUnixTimeMilliseconds(times.Created),
            LastModifiedDate = DateTimeOffset.FromUnixTimeMilliseconds(times.Updated),
            CustomerVersion = 1,
            GenerationId = times.Updated.ToString(CultureInfo.InvariantCulture),
            Validity = Validity(x509),
            CertificateMode = mode,
        };
    }

    private static CertificateValidity Validity(X509Certificate2 x509) => new()
    {
        NotBefore = new DateTimeOffset(x509.NotBefore.ToUniversalTime()),
        NotAfter = new DateTimeOffset(x509.NotAfter.ToUniversalTime()),
    };

    private static IReadOnlyList<Certificate> Certificates(Page<CertificateRecord> page) => [.. page.Items.Select(c => new Certificate
    {
        CertificateArn = c.Arn,
        CertificateId = c.Id,
        Status = c.Status,
        CertificateMode = "DEFAULT",
        CreationDate = DateTimeOffset.FromUnixTimeMilliseconds(c.CreatedMs),
    })];
}
