using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Trellis.Registry;

namespace Trellis.Api;

/// <summary>AWS IoT policy routes, versions and attachments.</summary>
public static class PoliciesApi
{
    public static IEndpointRouteBuilder MapPoliciesApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/policies/{policyName}", CreatePolicyAsync).WithName("CreatePolicy");
        app.MapGet("/policies/{policyName}", GetPolicy).WithName("GetPolicy");
        app.MapGet("/policies", ListPolicies).WithName("ListPolicies");
        app.MapDelete("/policies/{policyName}", DeletePolicy).WithName("DeletePolicy");
        app.MapPost("/policies/{policyName}/version", CreatePolicyVersionAsync).WithName("CreatePolicyVersion");
        app.MapGet("/policies/{policyName}/version", ListPolicyVersions).WithName("ListPolicyVersions");
        app.MapGet("/policies/{policyName}/version/{policyVersionId}", GetPolicyVersion).WithName("GetPolicyVersion");
        app.MapMethods("/policies/{policyName}/version/{policyVersionId}", ["PATCH"], SetDefaultPolicyVersion).WithName("SetDefaultPolicyVersion");
        app.MapDelete("/policies/{policyName}/version/{policyVersionId}", DeletePolicyVersion).WithName("DeletePolicyVersion");

        app.MapPut("/target-policies/{policyName}", AttachPolicyAsync).WithName("AttachPolicy");
        app.MapPost("/target-policies/{policyName}", DetachPolicyAsync).WithName("DetachPolicy");
        app.MapPost("/attached-policies/{target}", ListAttachedPolicies).WithName("ListAttachedPolicies");
        app.MapPost("/policy-targets/{policyName}", ListTargetsForPolicy).WithName("ListTargetsForPolicy");
        app.MapPut("/principal-policies/{policyName}", AttachPrincipalPolicy).WithName("AttachPrincipalPolicy");
        app.MapDelete("/principal-policies/{policyName}", DetachPrincipalPolicy).WithName("DetachPrincipalPolicy");
        return app;
    }

    private static async Task<IResult> CreatePolicyAsync(string policyName, HttpRequest request, RegistryService registry)
    {
        var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        if (!body.IsSuccess)
        {
            return AwsResults.Error(body.Error!);
        }

        var document = RequestBody.RequiredString(body.Value!, "policyDocument");
        if (!document.IsSuccess)
        {
            return AwsResults.Error(document.Error!);
        }

        var result = registry.CreatePolicy(policyName, document.Value);
        return result.IsSuccess
            ? AwsResults.Json(new JsonObject
            {
                ["policyName"] = policyName,
                ["policyArn"] = registry.Options.Arn("policy/" + policyName),
                ["policyDocument"] = result.Value!.Document,
                ["policyVersionId"] = result.Value.VersionId,
            })
            : AwsResults.Error(result.Error!);
    }

    private static IResult GetPolicy(string policyName, RegistryService registry)
    {
        var result = registry.GetPolicy(policyName);
        if (!result.IsSuccess)
        {
            return AwsResults.Error(result.Error!);
        }

        var p = result.Value!;
        return AwsResults.Json(new JsonObject
        {
            ["policyName"] = p.Name,
            ["policyArn"] = p.Arn,
            ["policyDocument"] = p.Document,
            ["defaultVersionId"] = p.DefaultVersionId,
            ["creationDate"] = AwsResults.Timestamp(p.CreatedMs),
            ["lastModifiedDate"] = AwsResults.Timestamp(p.UpdatedMs),
            ["generationId"] = p.UpdatedMs.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
    }

    private static IResult ListPolicies(HttpRequest request, RegistryService registry)
    {
        var size = RequestBody.QueryInt(request, "pageSize");
        var ascending = RequestBody.QueryBool(request, "isAscendingOrder", fallback: true);
        if (!size.IsSuccess || !ascending.IsSuccess)
        {
            return AwsResults.Error(size.Error ?? ascending.Error!);
        }

        var page = registry.ListPolicies(RequestBody.QueryString(request, "marker"), size.Value, ascending.Value);
        return PolicyPage(page);
    }

    private static IResult DeletePolicy(string policyName, RegistryService registry) =>
        registry.DeletePolicy(policyName) is { } error ? AwsResults.Error(error) : AwsResults.Empty();

    private static async Task<IResult> CreatePolicyVersionAsync(string policyName, HttpRequest request, RegistryService registry)
    {
        var setAsDefault = RequestBody.QueryBool(request, "setAsDefault");
        var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        if (!setAsDefault.IsSuccess || !body.IsSuccess)
        {
            return AwsResults.Error(setAsDefault.Error ?? body.Error!);
        }

        var document = RequestBody.RequiredString(body.Value!, "policyDocument");
        if (!document.IsSuccess)
        {
            return AwsResults.Error(document.Error!);
        }

        var result = registry.CreatePolicyVersion(policyName, document.Value, setAsDefault.Value);
        return result.IsSuccess
            ? AwsResults.Json(new JsonObject
            {
                ["policyArn"] = registry.Options.Arn("policy/" + policyName),
                ["policyDocument"] = result.Value!.Document,
                ["policyVersionId"] = result.Value.VersionId,
                ["isDefaultVersion"] = result.Value.IsDefault,
            })
            : AwsResults.Error(result.Error!);
    }

    private static IResult ListPolicyVersions(string policyName, RegistryService registry)
    {
        var result = registry.ListPolicyVersions(policyName);
        if (!result.IsSuccess)
        {
            return AwsResults.Error(result.Error!);
        }

        var versions = new JsonArray();
        foreach (var v in result.Value!)
        {
            versions.Add(new JsonObject { ["versionId"] = v.VersionId, ["isDefaultVersion"] = v.IsDefault, ["createDate"] = AwsResults.Timestamp(v.CreatedMs) });
        }

        return AwsResults.Json(new JsonObject { ["policyVersions"] = versions });
    }

    private static IResult GetPolicyVersion(string policyName, string policyVersionId, RegistryService registry)
    {
        var result = registry.GetPolicyVersion(policyName, policyVersionId);
        if (!result.IsSuccess)
        {
            return AwsResults.Error(result.Error!);
        }

        var v = result.Value!;
        return AwsResults.Json(new JsonObject
        {
            ["policyArn"] = registry.Options.Arn("policy/" + policyName),
            ["policyName"] = policyName,
            ["policyDocument"] = v.Document,
            ["policyVersionId"] = v.VersionId,
            ["isDefaultVersion"] = v.IsDefault,
            ["creationDate"] = AwsResults.Timestamp(v.CreatedMs),
            ["lastModifiedDate"] = AwsResults.Timestamp(v.CreatedMs),
            ["generationId"] = v.CreatedMs.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
    }

    private static IResult SetDefaultPolicyVersion(string policyName, string policyVersionId, RegistryService registry) =>
        registry.SetDefaultPolicyVersion(policyName, policyVersionId) is { } error ? AwsResults.Error(error) : AwsResults.Empty();

    private static IResult DeletePolicyVersion(string policyName, string policyVersionId, RegistryService registry) =>
        registry.DeletePolicyVersion(policyName, policyVersionId) is { } error ? AwsResults.Error(error) : AwsResults.Empty();

    private static async Task<IResult> AttachPolicyAsync(string policyName, HttpRequest request, RegistryService registry)
    {
        var target = await TargetAsync(request);
        if (!target.IsSuccess)
        {
            return AwsResults.Error(target.Error!);
        }

        return registry.AttachPolicy(policyName, target.Value) is { } error ? AwsResults.Error(error) : AwsResults.Empty();
    }

    private static async Task<IResult> DetachPolicyAsync(string policyName, HttpRequest request, RegistryService registry)
    {
        var target = await TargetAsync(request);
        if (!target.IsSuccess)
        {
            return AwsResults.Error(target.Error!);
        }

        return registry.DetachPolicy(policyName, target.Value) is { } error ? AwsResults.Error(error) : AwsResults.Empty();
    }

    private static IResult ListAttachedPolicies(string target, HttpRequest request, RegistryService registry)
    {
        var size = RequestBody.QueryInt(request, "pageSize");
        if (!size.IsSuccess)
        {
            return AwsResults.Error(size.Error!);
        }

        var result = registry.ListAttachedPolicies(Uri.UnescapeDataString(target), RequestBody.QueryString(request, "marker"), size.Value);
        return result.IsSuccess ? PolicyPage(result.Value!) : AwsResults.Error(result.Error!);
    }

    private static IResult ListTargetsForPolicy(string policyName, HttpRequest request, RegistryService registry)
    {
        var size = RequestBody.QueryInt(request, "pageSize");
        if (!size.IsSuccess)
        {
            return AwsResults.Error(size.Error!);
        }

        var result = registry.ListTargetsForPolicy(policyName, RequestBody.QueryString(request, "marker"), size.Value);
        if (!result.IsSuccess)
        {
            return AwsResults.Error(result.Error!);
        }

        var body = new JsonObject { ["targets"] = new JsonArray([.. result.Value!.Items.Select(t => (JsonNode)t)]) };
        AwsResults.WithNext(body, result.Value.NextToken, "nextMarker");

        return AwsResults.Json(body);
    }

    private static IResult AttachPrincipalPolicy(string policyName, HttpRequest request, RegistryService registry) =>
        registry.AttachPolicy(policyName, request.Headers["x-amzn-iot-principal"].ToString()) is { } error ? AwsResults.Error(error) : AwsResults.Empty();

    private static IResult DetachPrincipalPolicy(string policyName, HttpRequest request, RegistryService registry) =>
        registry.DetachPolicy(policyName, request.Headers["x-amzn-iot-principal"].ToString()) is { } error ? AwsResults.Error(error) : AwsResults.Empty();

    private static async Task<Trellis.Core.Errors.Result<string>> TargetAsync(HttpRequest request)
    {
        var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        return body.IsSuccess ? RequestBody.RequiredString(body.Value!, "target") : body.Error!;
    }

    private static IResult PolicyPage(Page<PolicyRecord> page)
    {
        var policies = new JsonArray();
        foreach (var p in page.Items)
        {
            policies.Add(new JsonObject { ["policyName"] = p.Name, ["policyArn"] = p.Arn });
        }

        var body = new JsonObject { ["policies"] = policies };
        AwsResults.WithNext(body, page.NextToken, "nextMarker");

        return AwsResults.Json(body);
    }
}
