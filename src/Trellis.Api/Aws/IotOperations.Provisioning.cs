using Trellis.Registry;
using Trellis.Registry.Provisioning;

namespace Trellis.Api.Aws.Iot;

/// <summary>Provisioning templates and their versions, and RegisterThing.</summary>
public sealed partial class IotOperations
{
    public Task<CreateProvisioningTemplateResponse> CreateProvisioningTemplateAsync(CreateProvisioningTemplateRequest request, CancellationToken cancellationToken)
    {
        var t = Ok(registry.CreateProvisioningTemplate(request.TemplateName, request.Description, request.TemplateBody, request.Enabled ?? false,
            request.ProvisioningRoleArn, Hook(request.PreProvisioningHook), request.Type));
        return DoneAsync(new CreateProvisioningTemplateResponse { TemplateArn = t.Arn, TemplateName = t.Name, DefaultVersionId = t.DefaultVersion });
    }

    public Task<DescribeProvisioningTemplateResponse> DescribeProvisioningTemplateAsync(DescribeProvisioningTemplateRequest request, CancellationToken cancellationToken)
    {
        var t = Ok(registry.DescribeProvisioningTemplate(request.TemplateName));
        return DoneAsync(TemplateView<DescribeProvisioningTemplateResponse>(t) with
        {
            DefaultVersionId = t.DefaultVersion,
            TemplateBody = t.Body,
            ProvisioningRoleArn = t.RoleArn,
            PreProvisioningHook = t.Hook is { } hook ? new ProvisioningHook { TargetArn = hook.TargetArn, PayloadVersion = hook.PayloadVersion ?? "2020-04-01" } : null,
        });
    }

    public Task<ListProvisioningTemplatesResponse> ListProvisioningTemplatesAsync(ListProvisioningTemplatesRequest request, CancellationToken cancellationToken)
    {
        var page = registry.ListProvisioningTemplates(request.NextToken, request.MaxResults);
        return DoneAsync(new ListProvisioningTemplatesResponse
        {
            Templates = [.. page.Items.Select(TemplateView<ProvisioningTemplateSummary>)],
            NextToken = page.NextToken,
        });
    }

    /// <summary>A template's members that Describe and List both answer.</summary>
    private static T TemplateView<T>(ProvisioningTemplateRecord t)
        where T : IProvisioningTemplateView, new() => new()
        {
            TemplateArn = t.Arn,
            TemplateName = t.Name,
            Description = t.Description,
            CreationDate = DateTimeOffset.FromUnixTimeMilliseconds(t.CreatedMs),
            LastModifiedDate = DateTimeOffset.FromUnixTimeMilliseconds(t.UpdatedMs),
            Enabled = t.Enabled,
            Type = t.Type,
        };

    public Task<UpdateProvisioningTemplateResponse> UpdateProvisioningTemplateAsync(UpdateProvisioningTemplateRequest request, CancellationToken cancellationToken)
    {
        Ok(registry.UpdateProvisioningTemplate(request.TemplateName, request.Description, request.Enabled, request.DefaultVersionId, request.ProvisioningRoleArn,
            Hook(request.PreProvisioningHook), request.RemovePreProvisioningHook ?? false));
        return DoneAsync(new UpdateProvisioningTemplateResponse());
    }

    public Task<DeleteProvisioningTemplateResponse> DeleteProvisioningTemplateAsync(DeleteProvisioningTemplateRequest request, CancellationToken cancellationToken) =>
        EmptyAsync<DeleteProvisioningTemplateResponse>(registry.DeleteProvisioningTemplate(request.TemplateName));

    public Task<CreateProvisioningTemplateVersionResponse> CreateProvisioningTemplateVersionAsync(CreateProvisioningTemplateVersionRequest request, CancellationToken cancellationToken)
    {
        var version = Ok(registry.CreateProvisioningTemplateVersion(request.TemplateName, request.TemplateBody, request.SetAsDefault ?? false));
        var template = Ok(registry.DescribeProvisioningTemplate(request.TemplateName));
        return DoneAsync(new CreateProvisioningTemplateVersionResponse
        {
            TemplateArn = template.Arn,
            TemplateName = template.Name,
            VersionId = version.Version,
            IsDefaultVersion = version.IsDefault,
        });
    }

    public Task<DescribeProvisioningTemplateVersionResponse> DescribeProvisioningTemplateVersionAsync(DescribeProvisioningTemplateVersionRequest request, CancellationToken cancellationToken)
    {
        var v = Ok(registry.DescribeProvisioningTemplateVersion(request.TemplateName, request.VersionId ?? 0));
        return DoneAsync(new DescribeProvisioningTemplateVersionResponse
        {
            VersionId = v.Version,
            CreationDate = DateTimeOffset.FromUnixTimeMilliseconds(v.CreatedMs),
            TemplateBody = v.Body,
            IsDefaultVersion = v.IsDefault,
        });
    }

    public Task<ListProvisioningTemplateVersionsResponse> ListProvisioningTemplateVersionsAsync(ListProvisioningTemplateVersionsRequest request, CancellationToken cancellationToken)
    {
        var versions = Ok(registry.ListProvisioningTemplateVersions(request.TemplateName));
        return DoneAsync(new ListProvisioningTemplateVersionsResponse
        {
            Versions = [.. versions.Select(v => new ProvisioningTemplateVersionSummary { VersionId = v.Version, CreationDate = DateTimeOffset.FromUnixTimeMilliseconds(v.CreatedMs), IsDefaultVersion = v.IsDefault })],
        });
    }

    public Task<DeleteProvisioningTemplateVersionResponse> DeleteProvisioningTemplateVersionAsync(DeleteProvisioningTemplateVersionRequest request, CancellationToken cancellationToken) =>
        EmptyAsync<DeleteProvisioningTemplateVersionResponse>(registry.DeleteProvisioningTemplateVersion(request.TemplateName, request.VersionId ?? 0));

    /// <summary>RegisterThing: applies a template body given inline, with its parameters, on the operator's authority.</summary>
    public Task<RegisterThingResponse> RegisterThingAsync(RegisterThingRequest request, CancellationToken cancellationToken)
    {
        if (request.Parameters?.FirstOrDefault(p => p.Value is null) is { Key: not null } missing)
        {
            throw new AwsErrorException(new TrellisError.InvalidRequest($"parameters.{missing.Key} must be a string."));
        }

        var document = TemplateDocument.Parse(request.TemplateBody);
        if (!document.IsSuccess)
        {
            throw new AwsErrorException(new TrellisError.InvalidRequest("templateBody: " + document.Error!.Message));
        }

        var parameters = request.Parameters?.ToDictionary(p => p.Key, p => p.Value!, StringComparer.Ordinal) ?? [];
        var outcome = registry.ApplyTemplate("RegisterThing", document.Value!, parameters);
        if (!outcome.IsSuccess)
        {
            throw new AwsErrorException(outcome.Error is TrellisError.InvalidRequest ? outcome.Error : new TrellisError.ResourceRegistrationFailure(outcome.Error!.Message));
        }

        return DoneAsync(new RegisterThingResponse
        {
            CertificatePem = outcome.Value!.Certificate?.Pem,
            ResourceArns = outcome.Value.ResourceArns.ToDictionary(a => a.Key, a => (string?)a.Value, StringComparer.Ordinal),
        });
    }

    /// <summary>
    /// A five-minute claim certificate for provisioning by a trusted user, under the same per-principal
    /// and server-wide limits on server-made key pairs as <c>$aws/certificates/create</c> (the principal
    /// is the calling API key).
    /// </summary>
    public Task<CreateProvisioningClaimResponse> CreateProvisioningClaimAsync(CreateProvisioningClaimRequest request, CancellationToken cancellationToken)
    {
        Ok(registry.DescribeProvisioningTemplate(request.TemplateName));
        var caller = callers.HttpContext?.Items["trellis.accessKeyId"] as string ?? "?";
        if (keyPairs.Refusal("key:" + caller) is { } refusal)
        {
            throw new AwsErrorException(new TrellisError.Throttling(refusal));
        }

        var (created, expiration) = Ok(registry.CreateProvisioningClaim(request.TemplateName));
        return DoneAsync(new CreateProvisioningClaimResponse
        {
            CertificateId = created.Certificate.Id,
            CertificatePem = created.Certificate.Pem,
            KeyPair = new KeyPair { PublicKey = created.PublicKeyPem, PrivateKey = created.PrivateKeyPem },
            Expiration = expiration,
        });
    }

    private static ProvisioningHookConfig? Hook(ProvisioningHook? hook) => hook is null ? null : new ProvisioningHookConfig(hook.TargetArn, hook.PayloadVersion);
}
