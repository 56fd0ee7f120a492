using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Trellis.Core.Errors;
using Trellis.Registry;
using Trellis.Registry.Provisioning;

namespace Trellis.Api;

/// <summary>Provisioning templates and their versions, and RegisterThing (AWS IoT routes and shapes).</summary>
public static class ProvisioningTemplatesApi
{
    public static IEndpointRouteBuilder MapProvisioningTemplatesApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/provisioning-templates", CreateAsync).WithName("CreateProvisioningTemplate");
        app.MapGet("/provisioning-templates/{templateName}", Describe).WithName("DescribeProvisioningTemplate");
        app.MapGet("/provisioning-templates", List).WithName("ListProvisioningTemplates");
        app.MapMethods("/provisioning-templates/{templateName}", ["PATCH"], UpdateAsync).WithName("UpdateProvisioningTemplate");
        app.MapDelete("/provisioning-templates/{templateName}", (string templateName, RegistryService registry) => AwsResults.Done(registry.DeleteProvisioningTemplate(templateName)))
            .WithName("DeleteProvisioningTemplate");
        app.MapPost("/provisioning-templates/{templateName}/versions", CreateVersionAsync).WithName("CreateProvisioningTemplateVersion");
        app.MapGet("/provisioning-templates/{templateName}/versions/{versionId}", DescribeVersion).WithName("DescribeProvisioningTemplateVersion");
        app.MapGet("/provisioning-templates/{templateName}/versions", ListVersions).WithName("ListProvisioningTemplateVersions");
        app.MapDelete("/provisioning-templates/{templateName}/versions/{versionId}", DeleteVersion).WithName("DeleteProvisioningTemplateVersion");
        app.MapPost("/things", RegisterThingAsync).WithName("RegisterThing");
        return app;
    }

    private static async Task<IResult> CreateAsync(HttpRequest request, RegistryService registry)
    {
        var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        if (!body.IsSuccess)
        {
            return AwsResults.Error(body.Error!);
        }

        var b = body.Value!;
        var name = RequestBody.RequiredString(b, "templateName");
        var description = RequestBody.OptionalString(b, "description");
        var templateBody = RequestBody.RequiredString(b, "templateBody");
        var enabled = RequestBody.OptionalBool(b, "enabled");
        var role = RequestBody.OptionalString(b, "provisioningRoleArn");
        var type = RequestBody.OptionalString(b, "type");
        var hook = Hook(b);
        var error = name.Error ?? description.Error ?? templateBody.Error ?? enabled.Error ?? role.Error ?? type.Error ?? hook.Error;
        if (error is not null)
        {
            return AwsResults.Error(error);
        }

        var created = registry.CreateProvisioningTemplate(name.Value!, description.Value, templateBody.Value, enabled.Value ?? false, role.Value, hook.Value, type.Value);
        return created.IsSuccess
            ? AwsResults.Json(new JsonObject { ["templateArn"] = created.Value!.Arn, ["templateName"] = created.Value.Name, ["defaultVersionId"] = created.Value.DefaultVersion })
            : AwsResults.Error(created.Error!);
    }

    private static IResult Describe(string templateName, RegistryService registry)
    {
        var result = registry.DescribeProvisioningTemplate(templateName);
        if (!result.IsSuccess)
        {
            return AwsResults.Error(result.Error!);
        }

        var t = result.Value!;
        var body = Summary(t);
        body["defaultVersionId"] = t.DefaultVersion;
        body["templateBody"] = t.Body;
        body["provisioningRoleArn"] = t.RoleArn;
        if (t.Hook is { } hook)
        {
            body["preProvisioningHook"] = new JsonObject { ["targetArn"] = hook.TargetArn, ["payloadVersion"] = hook.PayloadVersion ?? "2020-04-01" };
        }

        return AwsResults.Json(body);
    }

    private static IResult List(HttpRequest request, RegistryService registry)
    {
        var size = RequestBody.QueryInt(request, "maxResults");
        if (!size.IsSuccess)
        {
            return AwsResults.Error(size.Error!);
        }

        var page = registry.ListProvisioningTemplates(RequestBody.QueryString(request, "nextToken"), size.Value);
        return AwsResults.Json(AwsResults.WithNext(new JsonObject { ["templates"] = new JsonArray([.. page.Items.Select(t => (JsonNode)Summary(t))]) }, page.NextToken));
    }

    private static async Task<IResult> UpdateAsync(string templateName, HttpRequest request, RegistryService registry)
    {
        var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        if (!body.IsSuccess)
        {
            return AwsResults.Error(body.Error!);
        }

        var b = body.Value!;
        var description = RequestBody.OptionalString(b, "description");
        var enabled = RequestBody.OptionalBool(b, "enabled");
        var version = RequestBody.OptionalLong(b, "defaultVersionId");
        var role = RequestBody.OptionalString(b, "provisioningRoleArn");
        var remove = RequestBody.OptionalBool(b, "removePreProvisioningHook");
        var hook = Hook(b);
        var error = description.Error ?? enabled.Error ?? version.Error ?? role.Error ?? remove.Error ?? hook.Error;
        if (error is not null)
        {
            return AwsResults.Error(error);
        }

        return AwsResults.Done(registry.UpdateProvisioningTemplate(templateName, description.Value, enabled.Value, (int?)version.Value, role.Value, hook.Value, remove.Value ?? false));
    }

    private static async Task<IResult> CreateVersionAsync(string templateName, HttpRequest request, RegistryService registry)
    {
        var setAsDefault = RequestBody.QueryBool(request, "setAsDefault");
        var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        if (!setAsDefault.IsSuccess || !body.IsSuccess)
        {
            return AwsResults.Error(setAsDefault.Error ?? body.Error!);
        }

        var templateBody = RequestBody.RequiredString(body.Value!, "templateBody");
        if (!templateBody.IsSuccess)
        {
            return AwsResults.Error(templateBody.Error!);
        }

        var created = registry.CreateProvisioningTemplateVersion(templateName, templateBody.Value, setAsDefault.Value);
        if (!created.IsSuccess)
        {
            return AwsResults.Error(created.Error!);
        }

        var template = registry.DescribeProvisioningTemplate(templateName).Value!;
        return AwsResults.Json(new JsonObject
        {
            ["templateArn"] = template.Arn,
            ["templateName"] = template.Name,
            ["versionId"] = created.Value!.Version,
            ["isDefaultVersion"] = created.Value.IsDefault,
        });
    }

    private static IResult DescribeVersion(string templateName, string versionId, RegistryService registry)
    {
        if (!int.TryParse(versionId, NumberStyles.None, CultureInfo.InvariantCulture, out var version))
        {
            return AwsResults.Error(new TrellisError.InvalidRequest($"versionId '{versionId}' is not a version number."));
        }

        var result = registry.DescribeProvisioningTemplateVersion(templateName, version);
        return result.IsSuccess
            ? AwsResults.Json(new JsonObject
            {
                ["versionId"] = result.Value!.Version,
                ["creationDate"] = AwsResults.Timestamp(result.Value.CreatedMs),
                ["templateBody"] = result.Value.Body,
                ["isDefaultVersion"] = result.Value.IsDefault,
            })
            : AwsResults.Error(result.Error!);
    }

    private static IResult ListVersions(string templateName, RegistryService registry)
    {
        var result = registry.ListProvisioningTemplateVersions(templateName);
        return result.IsSuccess
            ? AwsResults.Json(new JsonObject
            {
                ["versions"] = new JsonArray([.. result.Value!.Select(v => (JsonNode)new JsonObject
                {
                    ["versionId"] = v.Version,
                    ["creationDate"] = AwsResults.Timestamp(v.CreatedMs),
                    ["isDefaultVersion"] = v.IsDefault,
                })]),
            })
            : AwsResults.Error(result.Error!);
    }

    private static IResult DeleteVersion(string templateName, string versionId, RegistryService registry) =>
        int.TryParse(versionId, NumberStyles.None, CultureInfo.InvariantCulture, out var version)
            ? AwsResults.Done(registry.DeleteProvisioningTemplateVersion(templateName, version))
            : AwsResults.Error(new TrellisError.InvalidRequest($"versionId '{versionId}' is not a version number."));

    /// <summary>RegisterThing: applies a template body given inline, with its parameters, on the operator's authority.</summary>
    private static async Task<IResult> RegisterThingAsync(HttpRequest request, RegistryService registry)
    {
        var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        if (!body.IsSuccess)
        {
            return AwsResults.Error(body.Error!);
        }

        var templateBody = RequestBody.RequiredString(body.Value!, "templateBody");
        if (!templateBody.IsSuccess)
        {
            return AwsResults.Error(templateBody.Error!);
        }

        var parameters = new Dictionary<string, string>(StringComparer.Ordinal);
        if (body.Value!["parameters"] is { } parameterNode)
        {
            if (parameterNode is not JsonObject map || map.Any(p => p.Value is not JsonValue v || !v.TryGetValue<string>(out _)))
            {
                return AwsResults.Error(new TrellisError.InvalidRequest("parameters must be an object of string values."));
            }

            foreach (var (key, value) in map)
            {
                parameters[key] = value!.GetValue<string>();
            }
        }

        var document = TemplateDocument.Parse(templateBody.Value!);
        if (!document.IsSuccess)
        {
            return AwsResults.Error(new TrellisError.InvalidRequest("templateBody: " + document.Error!.Message));
        }

        var outcome = registry.ApplyTemplate("RegisterThing", document.Value!, parameters);
        if (!outcome.IsSuccess)
        {
            return AwsResults.Error(outcome.Error is TrellisError.InvalidRequest ? outcome.Error : new TrellisError.ResourceRegistrationFailure(outcome.Error!.Message));
        }

        var arns = new JsonObject();
        foreach (var (key, value) in outcome.Value!.ResourceArns)
        {
            arns[key] = value;
        }

        var reply = new JsonObject { ["resourceArns"] = arns };
        if (outcome.Value.Certificate is { } certificate)
        {
            reply["certificatePem"] = certificate.Pem;
        }

        return AwsResults.Json(reply);
    }

    private static JsonObject Summary(ProvisioningTemplateRecord t) => new()
    {
        ["templateArn"] = t.Arn,
        ["templateName"] = t.Name,
        ["description"] = t.Description,
        ["creationDate"] = AwsResults.Timestamp(t.CreatedMs),
        ["lastModifiedDate"] = AwsResults.Timestamp(t.UpdatedMs),
        ["enabled"] = t.Enabled,
        ["type"] = t.Type,
    };

    private static Result<ProvisioningHookConfig?> Hook(JsonObject body)
    {
        if (body["preProvisioningHook"] is null)
        {
            return (ProvisioningHookConfig?)null;
        }

        if (body["preProvisioningHook"] is not JsonObject hook)
        {
            return new TrellisError.InvalidRequest("preProvisioningHook must be an object with targetArn (a webhook URL) and payloadVersion.");
        }

        var target = RequestBody.RequiredString(hook, "targetArn");
        var version = RequestBody.OptionalString(hook, "payloadVersion");
        if (!target.IsSuccess || !version.IsSuccess)
        {
            return target.Error ?? version.Error!;
        }

        return new ProvisioningHookConfig(target.Value!, version.Value);
    }
}
