using Trellis.Registry;

namespace Trellis.Api;

/// <summary>
/// Device tokens for constrained devices (user name = thing name, password = token on the plain
/// TCP and WebSocket listeners; with <c>dtlsPsk</c>, also the thing's DTLS pre-shared key on CoAP). AWS has no equivalent, so the routes live under <c>/api/</c>;
/// they are SigV4-signed like every other route.
/// </summary>
public static class DeviceTokensApi
{
    public static IEndpointRouteBuilder MapDeviceTokensApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/api/things/{thingName}/tokens", CreateAsync).WithName("CreateDeviceToken");
        app.MapGet("/api/things/{thingName}/tokens", List).WithName("ListDeviceTokens");
        app.MapGet("/api/tokens/{tokenId}", (string tokenId, RegistryService registry, TimeProvider time) =>
        {
            var result = registry.DescribeDeviceToken(tokenId);
            return result.IsSuccess ? AwsResults.Json(Describe(result.Value!, time)) : AwsResults.Error(result.Error!);
        }).WithName("DescribeDeviceToken");
        app.MapPost("/api/tokens/{tokenId}/expire", (string tokenId, RegistryService registry) => AwsResults.Done(registry.ExpireDeviceToken(tokenId))).WithName("ExpireDeviceToken");
        app.MapDelete("/api/tokens/{tokenId}", (string tokenId, RegistryService registry) => AwsResults.Done(registry.RevokeDeviceToken(tokenId))).WithName("RevokeDeviceToken");
        return app;
    }

    private static async Task<IResult> CreateAsync(string thingName, HttpRequest request, RegistryService registry, TimeProvider time)
    {
        var body = await RequestBody.ReadAsync<DeviceTokenBody>(request);
        if (body.Value is not { } input)
        {
            return AwsResults.Error(body.Error!);
        }

        var result = registry.CreateDeviceToken(thingName, input.ExpiresInSeconds, input.Description, input.DtlsPsk);
        if (!result.IsSuccess)
        {
            return AwsResults.Error(result.Error!);
        }

        // The only time the token is shown: it is stored as a salted hash.
        var answer = Describe(result.Value.Record, time);
        answer["token"] = result.Value.Token;
        return AwsResults.Json(answer);
    }

    private static IResult List(string thingName, RegistryService registry, TimeProvider time)
    {
        var result = registry.ListDeviceTokens(thingName);
        return result.IsSuccess
            ? AwsResults.Json(new JsonObject { ["tokens"] = new JsonArray([.. result.Value!.Select(t => (JsonNode?)Describe(t, time))]) })
            : AwsResults.Error(result.Error!);
    }

    private static JsonObject Describe(DeviceTokenRecord token, TimeProvider time)
    {
        var body = new JsonObject
        {
            ["tokenId"] = token.Id,
            ["tokenArn"] = token.Arn,
            ["thingName"] = token.ThingName,
            ["status"] = token.StatusAt(time.GetUtcNow().ToUnixTimeMilliseconds()),
            ["creationDate"] = AwsResults.Timestamp(token.CreatedMs),
        };
        if (token.ExpiresMs is { } expires)
        {
            body["expirationDate"] = AwsResults.Timestamp(expires);
        }

        if (token.DtlsPsk)
        {
            body["dtlsPsk"] = true;
        }

        if (token.Description is not null)
        {
            body["description"] = token.Description;
        }

        return body;
    }
}
