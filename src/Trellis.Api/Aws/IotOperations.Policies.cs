using System.Globalization;
using Trellis.Registry;

namespace Trellis.Api.Aws.Iot;

/// <summary>Policies, their versions and attachments; thing–principal attachments; DescribeEndpoint.</summary>
public sealed partial class IotOperations
{
    public Task<CreatePolicyResponse> CreatePolicyAsync(CreatePolicyRequest request, CancellationToken cancellationToken)
    {
        var version = Ok(registry.CreatePolicy(request.PolicyName, request.PolicyDocument));
        return DoneAsync(new CreatePolicyResponse
        {
            PolicyName = request.PolicyName,
            PolicyArn = registry.Options.Arn("policy/" + request.PolicyName),
            PolicyDocument = version.Document,
            PolicyVersionId = version.VersionId,
        });
    }

    public Task<GetPolicyResponse> GetPolicyAsync(GetPolicyRequest request, CancellationToken cancellationToken)
    {
        var p = Ok(registry.GetPolicy(request.PolicyName));
        return DoneAsync(PolicyView<GetPolicyResponse>(p.Name, p.Document, p.CreatedMs, p.UpdatedMs) with { DefaultVersionId = p.DefaultVersionId });
    }

    public Task<ListPoliciesResponse> ListPoliciesAsync(ListPoliciesRequest request, CancellationToken cancellationToken)
    {
        var page = registry.ListPolicies(request.Marker, request.PageSize, request.AscendingOrder ?? true);
        return DoneAsync(new ListPoliciesResponse { Policies = Policies(page), NextMarker = page.NextToken });
    }

    public Task<AwsEmpty> DeletePolicyAsync(DeletePolicyRequest request, CancellationToken cancellationToken) =>
        EmptyAsync(registry.DeletePolicy(request.PolicyName));

    public Task<CreatePolicyVersionResponse> CreatePolicyVersionAsync(CreatePolicyVersionRequest request, CancellationToken cancellationToken)
    {
        var version = Ok(registry.CreatePolicyVersion(request.PolicyName, request.PolicyDocument, request.SetAsDefault ?? false));
        return DoneAsync(new CreatePolicyVersionResponse
        {
            PolicyArn = registry.Options.Arn("policy/" + request.PolicyName),
            PolicyDocument = version.Document,
            PolicyVersionId = version.VersionId,
            IsDefaultVersion = version.IsDefault,
        });
    }

    public Task<ListPolicyVersionsResponse> ListPolicyVersionsAsync(ListPolicyVersionsRequest request, CancellationToken cancellationToken)
    {
        var versions = Ok(registry.ListPolicyVersions(request.PolicyName));
        return DoneAsync(new ListPolicyVersionsResponse
        {
            PolicyVersions = [.. versions.Select(v => new PolicyVersion { VersionId = v.VersionId, IsDefaultVersion = v.IsDefault, CreateDate = DateTimeOffset.FromUnixTimeMilliseconds(v.CreatedMs) })],
        });
    }

    public Task<GetPolicyVersionResponse> GetPolicyVersionAsync(GetPolicyVersionRequest request, CancellationToken cancellationToken)
    {
        var v = Ok(registry.GetPolicyVersion(request.PolicyName, request.PolicyVersionId));
        return DoneAsync(PolicyView<GetPolicyVersionResponse>(request.PolicyName, v.Document, v.CreatedMs, v.CreatedMs) with { PolicyVersionId = v.VersionId, IsDefaultVersion = v.IsDefault });
    }

    /// <summary>A policy's members that GetPolicy and GetPolicyVersion both answer; the generation id is the last change's time.</summary>
    private T PolicyView<T>(string name, string document, long createdMs, long modifiedMs)
        where T : IPolicyView, new() => new()
        {
            PolicyName = name,
            PolicyArn = registry.Options.Arn("policy/" + name),
            PolicyDocument = document,
            CreationDate = DateTimeOffset.FromUnixTimeMilliseconds(createdMs),
            LastModifiedDate = DateTimeOffset.FromUnixTimeMilliseconds(modifiedMs),
            GenerationId = modifiedMs.ToString(CultureInfo.InvariantCulture),
        };

    public Task<AwsEmpty> SetDefaultPolicyVersionAsync(SetDefaultPolicyVersionRequest request, CancellationToken cancellationToken) =>
        EmptyAsync(registry.SetDefaultPolicyVersion(request.PolicyName, request.PolicyVersionId));

    public Task<AwsEmpty> DeletePolicyVersionAsync(DeletePolicyVersionRequest request, CancellationToken cancellationToken) =>
        EmptyAsync(registry.DeletePolicyVersion(request.PolicyName, request.PolicyVersionId));

    public Task<AwsEmpty> AttachPolicyAsync(AttachPolicyRequest request, CancellationToken cancellationToken) =>
        EmptyAsync(registry.AttachPolicy(request.PolicyName, request.Target));

    public Task<AwsEmpty> DetachPolicyAsync(DetachPolicyRequest request, CancellationToken cancellationToken) =>
        EmptyAsync(registry.DetachPolicy(request.PolicyName, request.Target));

    public Task<ListAttachedPoliciesResponse> ListAttachedPoliciesAsync(ListAttachedPoliciesRequest request, CancellationToken cancellationToken)
    {
        var page = Ok(registry.ListAttachedPolicies(request.Target, request.Marker, request.PageSize));
        return DoneAsync(new ListAttachedPoliciesResponse { Policies = Policies(page), NextMarker = page.NextToken });
    }

    public Task<ListTargetsForPolicyResponse> ListTargetsForPolicyAsync(ListTargetsForPolicyRequest request, CancellationToken cancellationToken)
    {
        var page = Ok(registry.ListTargetsForPolicy(request.PolicyName, request.Marker, request.PageSize));
        return DoneAsync(new ListTargetsForPolicyResponse { Targets = [.. page.Items], NextMarker = page.NextToken });
    }

    public Task<AwsEmpty> AttachPrincipalPolicyAsync(AttachPrincipalPolicyRequest request, CancellationToken cancellationToken) =>
        EmptyAsync(registry.AttachPolicy(request.PolicyName, request.Principal));

    public Task<AwsEmpty> DetachPrincipalPolicyAsync(DetachPrincipalPolicyRequest request, CancellationToken cancellationToken) =>
        EmptyAsync(registry.DetachPolicy(request.PolicyName, request.Principal));

    public Task<AttachThingPrincipalResponse> AttachThingPrincipalAsync(AttachThingPrincipalRequest request, CancellationToken cancellationToken) =>
        EmptyAsync<AttachThingPrincipalResponse>(registry.AttachThingPrincipal(request.ThingName, request.Principal, request.ThingPrincipalType == "EXCLUSIVE_THING"));

    public Task<DetachThingPrincipalResponse> DetachThingPrincipalAsync(DetachThingPrincipalRequest request, CancellationToken cancellationToken) =>
        EmptyAsync<DetachThingPrincipalResponse>(registry.DetachThingPrincipal(request.ThingName, request.Principal));

    public Task<ListThingPrincipalsResponse> ListThingPrincipalsAsync(ListThingPrincipalsRequest request, CancellationToken cancellationToken)
    {
        var page = Ok(registry.ListThingPrincipals(request.ThingName, request.NextToken, request.MaxResults));
        return DoneAsync(new ListThingPrincipalsResponse { Principals = [.. page.Items], NextToken = page.NextToken });
    }

    public Task<ListPrincipalThingsResponse> ListPrincipalThingsAsync(ListPrincipalThingsRequest request, CancellationToken cancellationToken)
    {
        var page = Ok(registry.ListPrincipalThings(request.Principal, request.NextToken, request.MaxResults));
        return DoneAsync(new ListPrincipalThingsResponse { Things = [.. page.Items], NextToken = page.NextToken });
    }

    public Task<DescribeEndpointResponse> DescribeEndpointAsync(DescribeEndpointRequest request, CancellationToken cancellationToken)
    {
        return request.EndpointType switch
        {
            null or "" or "iot:Data" or "iot:Data-ATS" => DoneAsync(new DescribeEndpointResponse { EndpointAddress = endpoints.Tls }),
            "iot:Jobs" => DoneAsync(new DescribeEndpointResponse { EndpointAddress = endpoints.Api }),
            var type => throw new AwsErrorException(new TrellisError.InvalidRequest(
                $"Endpoint type '{type}' is not served here: iot:Data-ATS is MQTT over TLS, iot:Jobs the HTTP API (jobs and shadow data planes); there is no credentials provider.")),
        };
    }

    private static IReadOnlyList<Policy> Policies(Page<PolicyRecord> page) => [.. page.Items.Select(p => new Policy { PolicyName = p.Name, PolicyArn = p.Arn })];
}
