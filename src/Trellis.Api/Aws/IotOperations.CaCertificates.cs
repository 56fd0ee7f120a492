using Trellis.Registry;

namespace Trellis.Api.Aws.Iot;

/// <summary>Bring your own CA: CA certificates, the registration code, and registering device certificates.</summary>
public sealed partial class IotOperations
{
    public Task<GetRegistrationCodeResponse> GetRegistrationCodeAsync(GetRegistrationCodeRequest request, CancellationToken cancellationToken) =>
        DoneAsync(new GetRegistrationCodeResponse { RegistrationCode = registry.RegistrationCode() });

    public Task<RegisterCACertificateResponse> RegisterCACertificateAsync(RegisterCACertificateRequest request, CancellationToken cancellationToken)
    {
        var ca = Ok(registry.RegisterCaCertificate(request.CaCertificate, request.VerificationCertificate, request.SetAsActive ?? false,
            request.AllowAutoRegistration ?? false, RegistrationConfig(request.RegistrationConfig), request.CertificateMode));
        return DoneAsync(new RegisterCACertificateResponse { CertificateArn = ca.Arn, CertificateId = ca.Id });
    }

    public Task<DescribeCACertificateResponse> DescribeCACertificateAsync(DescribeCACertificateRequest request, CancellationToken cancellationToken)
    {
        var c = Ok(registry.DescribeCaCertificate(request.CertificateId));
        return DoneAsync(new DescribeCACertificateResponse
        {
            CertificateDescription = CertificateView<CACertificateDescription>(c.Arn, c.Id, c.Status, c.Pem, (c.CreatedMs, c.UpdatedMs), c.Mode) with
            {
                AutoRegistrationStatus = c.AutoRegistrationStatus,
            },
            RegistrationConfig = c.RegistrationConfig is { } config
                ? new RegistrationConfig { TemplateBody = config.TemplateBody, RoleArn = config.RoleArn, TemplateName = config.TemplateName }
                : null,
        });
    }

    public Task<AwsEmpty> UpdateCACertificateAsync(UpdateCACertificateRequest request, CancellationToken cancellationToken) =>
        EmptyAsync(registry.UpdateCaCertificate(request.CertificateId, request.NewStatus, request.NewAutoRegistrationStatus, RegistrationConfig(request.RegistrationConfig), request.RemoveAutoRegistration ?? false));

    public Task<DeleteCACertificateResponse> DeleteCACertificateAsync(DeleteCACertificateRequest request, CancellationToken cancellationToken) =>
        EmptyAsync<DeleteCACertificateResponse>(registry.DeleteCaCertificate(request.CertificateId));

    public Task<ListCACertificatesResponse> ListCACertificatesAsync(ListCACertificatesRequest request, CancellationToken cancellationToken)
    {
        var page = registry.ListCaCertificates(request.Marker, request.PageSize, request.AscendingOrder ?? false, request.TemplateName);
        return DoneAsync(new ListCACertificatesResponse
        {
            Certificates = [.. page.Items.Select(c => new CACertificate { CertificateArn = c.Arn, CertificateId = c.Id, Status = c.Status, CreationDate = DateTimeOffset.FromUnixTimeMilliseconds(c.CreatedMs) })],
            NextMarker = page.NextToken,
        });
    }

    public Task<ListCertificatesByCAResponse> ListCertificatesByCAAsync(ListCertificatesByCARequest request, CancellationToken cancellationToken)
    {
        var page = Ok(registry.ListCertificatesByCa(request.CaCertificateId, request.Marker, request.PageSize, request.AscendingOrder ?? false));
        return DoneAsync(new ListCertificatesByCAResponse { Certificates = Certificates(page), NextMarker = page.NextToken });
    }

    public Task<RegisterCertificateResponse> RegisterCertificateAsync(RegisterCertificateRequest request, CancellationToken cancellationToken)
    {
        var c = Ok(registry.RegisterCertificate(request.CertificatePem, request.CaCertificatePem, request.SetAsActive ?? false, request.Status));
        return DoneAsync(new RegisterCertificateResponse { CertificateArn = c.Arn, CertificateId = c.Id });
    }

    public Task<RegisterCertificateWithoutCAResponse> RegisterCertificateWithoutCAAsync(RegisterCertificateWithoutCARequest request, CancellationToken cancellationToken)
    {
        var c = Ok(registry.RegisterCertificateWithoutCa(request.CertificatePem, request.Status));
        return DoneAsync(new RegisterCertificateWithoutCAResponse { CertificateArn = c.Arn, CertificateId = c.Id });
    }

    /// <summary>AWS's RegistrationConfig: a JITP template by name, or a body (with its role); not both.</summary>
    private static CaRegistrationConfig? RegistrationConfig(RegistrationConfig? config)
    {
        if (config is null || (config.TemplateBody is null && config.TemplateName is null))
        {
            return null;
        }

        return config.TemplateBody is not null && config.TemplateName is not null
            ? throw new AwsErrorException(new TrellisError.InvalidRequest("registrationConfig takes templateBody or templateName, not both."))
            : new CaRegistrationConfig(config.TemplateName, config.TemplateBody, config.RoleArn);
    }
}
