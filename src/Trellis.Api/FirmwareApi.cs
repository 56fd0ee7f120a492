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
            store.Get(name) is { } firmware ? AwsResults.Json(Describe(firmware)) : AwsResults.Error(NotFound(name))).WithName("DescribeFirmware");
        app.MapDelete("/api/firmware/{name}", (string name, IFirmwareStore store) =>
            store.Delete(name) ? AwsResults.Json(new JsonObject()) : AwsResults.Error(NotFound(name))).WithName("DeleteFirmware");
        app.MapPost("/api/firmware/{name}/url", (string name, HttpRequest request, IFirmwareStore store, PresignedUrls urls) =>
        {
            var seconds = long.TryParse(request.Query["expiresInSec"].FirstOrDefault(), System.Globalization.CultureInfo.InvariantCulture, out var s) ? Math.Clamp(s, 60, 7 * 24 * 3600) : PresignedUrls.DefaultExpiresInSec;
            return store.Get(name) is { } firmware
                ? AwsResults.Json(new JsonObject { ["url"] = urls.For(firmware, seconds), ["expiresInSec"] = seconds })
                : AwsResults.Error(NotFound(name));
        }).WithName("GetFirmwareUrl");
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

    private static JsonObject Describe(FirmwareRecord f) => new()
    {
        ["name"] = f.Name,
        ["sha256"] = f.Sha256,
        ["size"] = f.Size,
        ["description"] = f.Description,
        ["createdAt"] = AwsResults.Timestamp(f.CreatedMs),
        ["placeholder"] = $"${{aws:iot:s3-presigned-url:firmware/{f.Name}}}",
    };

    private static TrellisError NotFound(string name) => new TrellisError.NotFound($"Firmware '{name}' does not exist.");
}
