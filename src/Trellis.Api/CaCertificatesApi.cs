using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Trellis.Core.Errors;
using Trellis.Registry;

namespace Trellis.Api;

/// <summary>Bring your own CA: AWS IoT's CA certificate routes, the registration code, and registering device certificates.</summary>
public static class CaCertificatesApi
{
    public static IEndpointRouteBuilder MapCaCertificatesApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/registrationcode", (RegistryService registry) => AwsResults.Json(new JsonObject { ["registrationCode"] = registry.RegistrationCode() }))
            .WithName("GetRegistrationCode");
        app.MapPost("/cacertificate", RegisterCaCertificateAsync).WithName("RegisterCACertificate");
        app.MapGet("/cacertificate/{caCertificateId}", DescribeCaCertificate).WithName("DescribeCACertificate");
        app.MapPut("/cacertificate/{caCertificateId}", UpdateCaCertificateAsync).WithName("UpdateCACertificate");
        app.MapDelete("/cacertificate/{caCertificateId}", (string caCertificateId, RegistryService registry) => AwsResults.Done(registry.DeleteCaCertificate(caCertificateId)))
            .WithName("DeleteCACertificate");
        app.MapGet("/cacertificates", ListCaCertificates).WithName("ListCACertificates");
        app.MapGet("/certificates-by-ca/{caCertificateId}", ListCertificatesByCa).WithName("ListCertificatesByCA");
        app.MapPost("/certificate/register", RegisterCertificateAsync).WithName("RegisterCertificate");
        app.MapPost("/certificate/register-no-ca", RegisterCertificateWithoutCaAsync).WithName("RegisterCertificateWithoutCA");
        return app;
    }

    private static async Task<IResult> RegisterCaCertificateAsync(HttpRequest request, RegistryService registry)
    {
        var active = RequestBody.QueryBool(request, "setAsActive");
        var auto = RequestBody.QueryBool(request, "allowAutoRegistration");
        var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        if (!active.IsSuccess || !auto.IsSuccess || !body.IsSuccess)
        {
            return AwsResults.Error(active.Error ?? auto.Error ?? body.Error!);
        }

        var ca = RequestBody.RequiredString(body.Value!, "caCertificate");
        var verification = RequestBody.OptionalString(body.Value!, "verificationCertificate");
        var mode = RequestBody.OptionalString(body.Value!, "certificateMode");
        var config = RegistrationConfig(body.Value!);
        if (!ca.IsSuccess || !verification.IsSuccess || !mode.IsSuccess || !config.IsSuccess)
        {
            return AwsResults.Error(ca.Error ?? verification.Error ?? mode.Error ?? config.Error!);
        }

        var registered = registry.RegisterCaCertificate(ca.Value, verification.Value, active.Value, auto.Value, config.Value, mode.Value);
        return registered.IsSuccess
            ? AwsResults.Json(new JsonObject { ["certificateArn"] = registered.Value!.Arn, ["certificateId"] = registered.Value.Id })
            : AwsResults.Error(registered.Error!);
    }

    private static IResult DescribeCaCertificate(string caCertificateId, RegistryService registry)
    {
        var result = registry.DescribeCaCertificate(caCertificateId);
        if (!result.IsSuccess)
        {
            return AwsResults.Error(result.Error!);
        }

        var c = result.Value!;
        var description = CertificatesApi.Description(c.Arn, c.Id, c.Status, c.Pem, registry.Options.AccountId, c.CreatedMs, c.UpdatedMs, c.Mode);
        description["autoRegistrationStatus"] = c.AutoRegistrationStatus;
        var body = new JsonObject { ["certificateDescription"] = description };
        if (c.RegistrationConfig is { } config)
        {
            var registration = new JsonObject();
            if (config.TemplateBody is not null)
            {
                registration["templateBody"] = config.TemplateBody;
            }

            if (config.RoleArn is not null)
            {
                registration["roleArn"] = config.RoleArn;
            }

            if (config.TemplateName is not null)
            {
                registration["templateName"] = config.TemplateName;
            }

            body["registrationConfig"] = registration;
        }

        return AwsResults.Json(body);
    }

    private static async Task<IResult> UpdateCaCertificateAsync(string caCertificateId, HttpRequest request, RegistryService registry)
    {
        var body = request.ContentLength is null or 0 && !request.Headers.ContainsKey("Transfer-Encoding")
            ? new JsonObject()
            : await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        if (!body.IsSuccess)
        {
            return AwsResults.Error(body.Error!);
        }

        var config = RegistrationConfig(body.Value!);
        var remove = RequestBody.OptionalBool(body.Value!, "removeAutoRegistration");
        if (!config.IsSuccess || !remove.IsSuccess)
        {
            return AwsResults.Error(config.Error ?? remove.Error!);
        }

        return AwsResults.Done(registry.UpdateCaCertificate(caCertificateId, RequestBody.QueryString(request, "newStatus"), RequestBody.QueryString(request, "newAutoRegistrationStatus"), config.Value, remove.Value ?? false));
    }

    private static IResult ListCaCertificates(HttpRequest request, RegistryService registry)
    {
        var size = RequestBody.QueryInt(request, "pageSize");
        var ascending = RequestBody.QueryBool(request, "isAscendingOrder");
        if (!size.IsSuccess || !ascending.IsSuccess)
        {
            return AwsResults.Error(size.Error ?? ascending.Error!);
        }

        var page = registry.ListCaCertificates(RequestBody.QueryString(request, "marker"), size.Value, ascending.Value, RequestBody.QueryString(request, "templateName"));
        var items = new JsonArray();
        foreach (var c in page.Items)
        {
            items.Add(new JsonObject
            {
                ["certificateArn"] = c.Arn,
                ["certificateId"] = c.Id,
                ["status"] = c.Status,
                ["creationDate"] = AwsResults.Timestamp(c.CreatedMs),
            });
        }

        return AwsResults.Json(AwsResults.WithNext(new JsonObject { ["certificates"] = items }, page.NextToken, "nextMarker"));
    }

    private static IResult ListCertificatesByCa(string caCertificateId, HttpRequest request, RegistryService registry)
    {
        var size = RequestBody.QueryInt(request, "pageSize");
        var ascending = RequestBody.QueryBool(request, "isAscendingOrder");
        if (!size.IsSuccess || !ascending.IsSuccess)
        {
            return AwsResults.Error(size.Error ?? ascending.Error!);
        }

        var page = registry.ListCertificatesByCa(caCertificateId, RequestBody.QueryString(request, "marker"), size.Value, ascending.Value);
        if (!page.IsSuccess)
        {
            return AwsResults.Error(page.Error!);
        }

        var items = new JsonArray();
        foreach (var c in page.Value!.Items)
        {
            items.Add(new JsonObject
            {
                ["certificateArn"] = c.Arn,
                ["certificateId"] = c.Id,
                ["status"] = c.Status,
                ["certificateMode"] = "DEFAULT",
                ["creationDate"] = AwsResults.Timestamp(c.CreatedMs),
            });
        }

        return AwsResults.Json(AwsResults.WithNext(new JsonObject { ["certificates"] = items }, page.Value.NextToken, "nextMarker"));
    }

    private static async Task<IResult> RegisterCertificateAsync(HttpRequest request, RegistryService registry)
    {
        var active = RequestBody.QueryBool(request, "setAsActive");
        var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        if (!active.IsSuccess || !body.IsSuccess)
        {
            return AwsResults.Error(active.Error ?? body.Error!);
        }

        var pem = RequestBody.RequiredString(body.Value!, "certificatePem");
        var caPem = RequestBody.OptionalString(body.Value!, "caCertificatePem");
        var status = RequestBody.OptionalString(body.Value!, "status");
        if (!pem.IsSuccess || !caPem.IsSuccess || !status.IsSuccess)
        {
            return AwsResults.Error(pem.Error ?? caPem.Error ?? status.Error!);
        }

        return Registered(registry.RegisterCertificate(pem.Value, caPem.Value, active.Value, status.Value));
    }

    private static async Task<IResult> RegisterCertificateWithoutCaAsync(HttpRequest request, RegistryService registry)
    {
        var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        if (!body.IsSuccess)
        {
            return AwsResults.Error(body.Error!);
        }

        var pem = RequestBody.RequiredString(body.Value!, "certificatePem");
        var status = RequestBody.OptionalString(body.Value!, "status");
        if (!pem.IsSuccess || !status.IsSuccess)
        {
            return AwsResults.Error(pem.Error ?? status.Error!);
        }

        return Registered(registry.RegisterCertificateWithoutCa(pem.Value, status.Value));
    }

    private static IResult Registered(Result<CertificateRecord> result) => result.IsSuccess
        ? AwsResults.Json(new JsonObject { ["certificateArn"] = result.Value!.Arn, ["certificateId"] = result.Value.Id })
        : AwsResults.Error(result.Error!);

    /// <summary>AWS's RegistrationConfig: <c>{templateBody, roleArn, templateName}</c>, or null when absent.</summary>
    private static Result<CaRegistrationConfig?> RegistrationConfig(JsonObject body)
    {
        if (body["registrationConfig"] is null)
        {
            return (CaRegistrationConfig?)null;
        }

        if (body["registrationConfig"] is not JsonObject config)
        {
            return new TrellisError.InvalidRequest("registrationConfig must be an object with templateBody and roleArn, or templateName.");
        }

        var templateBody = RequestBody.OptionalString(config, "templateBody");
        var roleArn = RequestBody.OptionalString(config, "roleArn");
        var templateName = RequestBody.OptionalString(config, "templateName");
        if (!templateBody.IsSuccess || !roleArn.IsSuccess || !templateName.IsSuccess)
        {
            return templateBody.Error ?? roleArn.Error ?? templateName.Error!;
        }

        if (templateBody.Value is not null && templateName.Value is not null)
        {
            return new TrellisError.InvalidRequest("registrationConfig takes templateBody or templateName, not both.");
        }

        return templateBody.Value is null && templateName.Value is null
            ? (CaRegistrationConfig?)null
            : new CaRegistrationConfig(templateName.Value, templateBody.Value, roleArn.Value);
    }
}
