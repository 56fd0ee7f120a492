using Trellis.Jobs.Firmware;

namespace Trellis.Api;

/// <summary>
/// Firmware images (AWS keeps them in S3; Trellis in its data folder): upload, list, describe,
/// delete and a download link under <c>/api/firmware</c> (SigV4), and the download itself at
/// <c>/firmware/{name}</c>, whose pre-signed link is its credential, with HTTP ranges so a cut
/// download resumes where it stopped.
/// </summary>
public static class FirmwareApi
{
    public static IEndpointRouteBuilder MapFirmwareApi(this IEndpointRouteBuilder app)
    {
        app.MapPut("/api/firmware/{name}", UploadAsync).WithName("UploadFirmware");
        app.MapGet("/api/firmware", (HttpRequest request, IFirmwareStore store) =>
        {
            var after = request.Query["nextToken"].FirstOrDefault();
            var size = int.TryParse(request.Query["maxResults"].FirstOrDefault(), System.Globalization.CultureInfo.InvariantCulture, out var n) ? Math.Clamp(n, 1, 250) : 100;
            var items = store.List(after, size + 1);
            return AwsResults.Json(new JsonObject
            {
                ["firmware"] = new JsonArray([.. items.Take(size).Select(f => (JsonNode)Describe(f))]),
                ["nextToken"] = items.Count > size ? items[size - 1].Name : null,
            });
        }).WithName("ListFirmware");
        app.MapGet("/api/firmware/{name}", (string name, IFirmwareStore store) =>
            store.Get(name) is { } firmware ? AwsResults.Json(Describe(firmware, store)) : AwsResults.Error(NotFound(name))).WithName("DescribeFirmware");
        app.MapDelete("/api/firmware/{name}", (string name, IFirmwareStore store) =>
            store.Delete(name) ? AwsResults.Json(new JsonObject()) : AwsResults.Error(NotFound(name))).WithName("DeleteFirmware");
        app.MapPost("/api/firmware/{name}/url", (string name, HttpRequest request, IFirmwareStore store, PresignedUrls urls) =>
        {
            var seconds = long.TryParse(request.Query["expiresInSec"].FirstOrDefault(), System.Globalization.CultureInfo.InvariantCulture, out var s) ? Math.Clamp(s, 60, 7 * 24 * 3600) : PresignedUrls.DefaultExpiresInSec;
            return store.Get(name) is { } firmware
                ? AwsResults.Json(new JsonObject { ["url"] = urls.For(firmware, seconds), ["expiresInSec"] = seconds })
                : AwsResults.Error(NotFound(name));
        }).WithName("GetFirmwareUrl");
        app.MapPost("/api/firmware/{name}/signature", SignAsync).WithName("SignFirmware");
        app.MapGet("/api/code-signing/certificate", (CodeSigner signer) =>
            AwsResults.Json(new JsonObject { ["certificatePem"] = signer.CertificatePem, ["signatureAlgorithm"] = CodeSigner.Algorithm })).WithName("GetCodeSigningCertificate");
        app.MapPost("/api/firmware/{name}/deltas", async (string name, HttpRequest request, IFirmwareStore store) =>
        {
            var fromName = request.Query["from"].FirstOrDefault();
            if (string.IsNullOrEmpty(fromName))
            {
                return AwsResults.Error(new TrellisError.InvalidRequest("Name the image devices run now with ?from=NAME: the patch turns it into this one."));
            }

            if (store.Get(name) is not { } to)
            {
                return AwsResults.Error(NotFound(name));
            }

            if (store.Get(fromName) is not { } from)
            {
                return AwsResults.Error(NotFound(fromName));
            }

            var made = await store.AddDeltaAsync(from, to, request.HttpContext.RequestAborted);
            return made.IsSuccess ? AwsResults.Json(DescribeDelta(made.Value!, to, fromName)) : AwsResults.Error(made.Error!);
        }).WithName("CreateFirmwareDelta");
        app.MapMethods("/firmware/{name}", ["GET", "HEAD"], (string name, HttpRequest request, IFirmwareStore store, PresignedUrls urls) =>
        {
            // The same answer for an unknown name as for a bad link: a link is the only way in.
            var q = request.Query;
            if (urls.Refusal(name, q["sha256"].FirstOrDefault(), q["expires"].FirstOrDefault(), q["signature"].FirstOrDefault()) is { } refusal)
            {
                return AwsResults.Error("AccessDeniedException", StatusCodes.Status403Forbidden, refusal);
            }

            if (store.Get(name) is not { } firmware || firmware.Sha256 != q["sha256"].FirstOrDefault())
            {
                return AwsResults.Error("ResourceNotFoundException", StatusCodes.Status404NotFound, $"Firmware '{name}' with that SHA-256 is no longer stored.");
            }

            if (q["from"].FirstOrDefault() is { Length: > 0 } current)
            {
                // A device that runs the image with SHA-256 `current` asks for the patch from it.
                if (store.GetDelta(current, firmware.Sha256) is not { } delta)
                {
                    return AwsResults.Error("ResourceNotFoundException", StatusCodes.Status404NotFound, $"No delta from {current} to '{name}' is stored: download the full image (the same link without 'from').");
                }

                request.HttpContext.Response.Headers["x-trellis-delta-from"] = delta.FromSha256;
                return Results.File(store.PathOf(delta), FirmwareDelta.MediaType, fileDownloadName: null, lastModified: null,
                    entityTag: new Microsoft.Net.Http.Headers.EntityTagHeaderValue($"\"{delta.FromSha256}-{delta.ToSha256}\""), enableRangeProcessing: true);
            }

            return Results.File(store.PathOf(firmware), "application/octet-stream", fileDownloadName: null, lastModified: null,
                entityTag: new Microsoft.Net.Http.Headers.EntityTagHeaderValue($"\"{firmware.Sha256}\""), enableRangeProcessing: true);
        }).WithName("DownloadFirmware");
        return app;
    }

    private static async Task<IResult> UploadAsync(string name, HttpContext context, IFirmwareStore store, ApiLimits limits)
    {
        var description = context.Request.Query["description"].FirstOrDefault();
        var declared = context.Items["trellis.payloadSha256"] as string; // signed: the bytes must hash to it
        var added = await store.AddAsync(name, context.Request.Body, declared, description, limits.MaxFirmwareBytes, context.RequestAborted);
        return added.IsSuccess ? AwsResults.Json(Describe(added.Value!)) : AwsResults.Error(added.Error!);
    }

    /// <summary>
    /// Signs an image with Trellis's code-signing key (no body), or records a signature made
    /// elsewhere (<c>{"signature": base64, "certificatePem": PEM}</c>) once it verifies.
    /// </summary>
    private static async Task<IResult> SignAsync(string name, HttpRequest request, IFirmwareStore store, CodeSigner signer)
    {
        if (store.Get(name) is not { } firmware)
        {
            return AwsResults.Error(NotFound(name));
        }

        var hash = Convert.FromHexString(firmware.Sha256);
        string signature;
        string certificate;
        if (request.ContentLength is null or 0)
        {
            signature = Convert.ToBase64String(signer.Sign(hash));
            certificate = signer.CertificatePem;
        }
        else
        {
            var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
            if (!body.IsSuccess)
            {
                return AwsResults.Error(body.Error!);
            }

            var given = RequestBody.OptionalString(body.Value!, "signature");
            var pem = RequestBody.OptionalString(body.Value!, "certificatePem");
            if (!given.IsSuccess || !pem.IsSuccess || given.Value is null || pem.Value is null)
            {
                return AwsResults.Error(new TrellisError.InvalidRequest("Give 'signature' (base64, DER or r||s) and 'certificatePem' (the signer's X.509 certificate), or no body to sign with Trellis's own key."));
            }

            byte[] bytes;
            try
            {
                bytes = Convert.FromBase64String(given.Value);
            }
            catch (FormatException)
            {
                return AwsResults.Error(new TrellisError.InvalidRequest("'signature' is not base64."));
            }

            if (CodeSigner.Refusal(pem.Value, hash, bytes) is { } refusal)
            {
                return AwsResults.Error(new TrellisError.InvalidRequest($"The signature was not recorded: {refusal}."));
            }

            signature = Convert.ToBase64String(bytes);
            certificate = pem.Value;
        }

        store.SetSignature(name, signature, certificate);
        return AwsResults.Json(Describe(store.Get(name)!, store));
    }

    private static JsonObject DescribeDelta(FirmwareDeltaRecord d, FirmwareRecord to, string? fromName) => new()
    {
        ["fromName"] = fromName,
        ["fromSha256"] = d.FromSha256,
        ["toSha256"] = d.ToSha256,
        ["size"] = d.Size,
        ["fullSize"] = to.Size,
        ["saving"] = to.Size == 0 ? 0 : Math.Round(1 - ((double)d.Size / to.Size), 4),
        ["createdAt"] = AwsResults.Timestamp(d.CreatedMs),
    };

    private static JsonObject Describe(FirmwareRecord f, IFirmwareStore store)
    {
        var described = Describe(f);
        described["deltas"] = new JsonArray([.. store.DeltasTo(f.Sha256).Select(d => (JsonNode)DescribeDelta(d, f, null))]);
        return described;
    }

    private static JsonObject Describe(FirmwareRecord f) => new()
    {
        ["name"] = f.Name,
        ["sha256"] = f.Sha256,
        ["size"] = f.Size,
        ["description"] = f.Description,
        ["createdAt"] = AwsResults.Timestamp(f.CreatedMs),
        ["placeholder"] = $"${{aws:iot:s3-presigned-url:firmware/{f.Name}}}",
        ["signature"] = f.Signature,
        ["signatureAlgorithm"] = f.Signature is null ? null : CodeSigner.Algorithm,
        ["signerCertificatePem"] = f.SignerCertificate,
    };

    private static TrellisError NotFound(string name) => new TrellisError.NotFound($"Firmware '{name}' does not exist.");
}
