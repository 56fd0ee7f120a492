using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Trellis.Registry;

namespace Trellis.Api;

/// <summary>AWS IoT certificate routes.</summary>
public static class CertificatesApi
{
    public static IEndpointRouteBuilder MapCertificatesApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/keys-and-certificate", CreateKeysAndCertificate).WithName("CreateKeysAndCertificate");
        app.MapPost("/certificates", CreateCertificateFromCsrAsync).WithName("CreateCertificateFromCsr");
        app.MapGet("/certificates/{certificateId}", DescribeCertificate).WithName("DescribeCertificate");
        app.MapGet("/certificates", ListCertificates).WithName("ListCertificates");
        app.MapPut("/certificates/{certificateId}", UpdateCertificate).WithName("UpdateCertificate");
        app.MapDelete("/certificates/{certificateId}", DeleteCertificate).WithName("DeleteCertificate");
        return app;
    }

    private static IResult CreateKeysAndCertificate(HttpRequest request, RegistryService registry)
    {
        var active = RequestBody.QueryBool(request, "setAsActive");
        if (!active.IsSuccess)
        {
            return AwsResults.Error(active.Error!);
        }

        var created = registry.CreateKeysAndCertificate(active.Value);
        return AwsResults.Json(new JsonObject
        {
            ["certificateArn"] = created.Certificate.Arn,
            ["certificateId"] = created.Certificate.Id,
            ["certificatePem"] = created.Certificate.Pem,
            ["keyPair"] = new JsonObject { ["PublicKey"] = created.PublicKeyPem, ["PrivateKey"] = created.PrivateKeyPem },
        });
    }

    private static async Task<IResult> CreateCertificateFromCsrAsync(HttpRequest request, RegistryService registry)
    {
        var active = RequestBody.QueryBool(request, "setAsActive");
        var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        if (!active.IsSuccess || !body.IsSuccess)
        {
            return AwsResults.Error(active.Error ?? body.Error!);
        }

        var csr = RequestBody.RequiredString(body.Value!, "certificateSigningRequest");
        if (!csr.IsSuccess)
        {
            return AwsResults.Error(csr.Error!);
        }

        var created = registry.CreateCertificateFromCsr(csr.Value, active.Value);
        return created.IsSuccess
            ? AwsResults.Json(new JsonObject
            {
                ["certificateArn"] = created.Value!.Certificate.Arn,
                ["certificateId"] = created.Value.Certificate.Id,
                ["certificatePem"] = created.Value.Certificate.Pem,
            })
            : AwsResults.Error(created.Error!);
    }

    private static IResult DescribeCertificate(string certificateId, RegistryService registry)
    {
        var result = registry.DescribeCertificate(certificateId);
        if (!result.IsSuccess)
        {
            return AwsResults.Error(result.Error!);
        }

        var c = result.Value!;
        var description = Description(c.Arn, c.Id, c.Status, c.Pem, registry.Options.AccountId, c.CreatedMs, c.UpdatedMs, "DEFAULT");
        description["caCertificateId"] = c.CaCertificateId;
        return AwsResults.Json(new JsonObject { ["certificateDescription"] = description });
    }

    /// <summary>AWS's CertificateDescription / CACertificateDescription fields common to device and CA certificates.</summary>
    internal static JsonObject Description(string arn, string id, string status, string pem, string accountId, long createdMs, long updatedMs, string mode)
    {
        using var x509 = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(pem);
        return new JsonObject
        {
            ["certificateArn"] = arn,
            ["certificateId"] = id,
            ["status"] = status,
            ["certificatePem"] = pem,
            ["ownedBy"] = accountId,
            ["creationDate"] = AwsResults.Timestamp(createdMs),
            ["lastModifiedDate"] = AwsResults.Timestamp(updatedMs),
            ["customerVersion"] = 1,
            ["generationId"] = updatedMs.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["validity"] = new JsonObject
            {
                ["notBefore"] = new DateTimeOffset(x509.NotBefore.ToUniversalTime()).ToUnixTimeSeconds(),
                ["notAfter"] = new DateTimeOffset(x509.NotAfter.ToUniversalTime()).ToUnixTimeSeconds(),
            },
            ["certificateMode"] = mode,
        };
    }

    private static IResult ListCertificates(HttpRequest request, RegistryService registry)
    {
        var size = RequestBody.QueryInt(request, "pageSize");
        var ascending = RequestBody.QueryBool(request, "isAscendingOrder");
        if (!size.IsSuccess || !ascending.IsSuccess)
        {
            return AwsResults.Error(size.Error ?? ascending.Error!);
        }

        var page = registry.ListCertificates(RequestBody.QueryString(request, "marker"), size.Value, ascending.Value);
        var items = new JsonArray();
        foreach (var c in page.Items)
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

        var body = new JsonObject { ["certificates"] = items };
        AwsResults.WithNext(body, page.NextToken, "nextMarker");

        return AwsResults.Json(body);
    }

    private static IResult UpdateCertificate(string certificateId, HttpRequest request, RegistryService registry)
    {
        var status = request.Query["newStatus"].ToString();
        var error = registry.UpdateCertificate(certificateId, status.Length > 0 ? status : null);
        return error is null ? AwsResults.Empty() : AwsResults.Error(error);
    }

    private static IResult DeleteCertificate(string certificateId, HttpRequest request, RegistryService registry)
    {
        var force = RequestBody.QueryBool(request, "forceDelete");
        if (!force.IsSuccess)
        {
            return AwsResults.Error(force.Error!);
        }

        var error = registry.DeleteCertificate(certificateId, force.Value);
        return error is null ? AwsResults.Empty() : AwsResults.Error(error);
    }
}
