using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Trellis.Shadows;

namespace Trellis.Api;

/// <summary>Publishes a message into the broker for the HTTP data plane (implemented by the server over the broker).</summary>
public interface IMessagePublisher
{
    /// <summary>Publishes as the server. Completes when the message is routed (and durable where the broker makes it so).</summary>
    Task PublishAsync(string topic, ReadOnlyMemory<byte> payload, byte qos, bool retain);
}

/// <summary>
/// The AWS IoT data plane over HTTP (signing name <c>iotdata</c>), as <c>boto3.client("iot-data")</c>
/// calls it: GetThingShadow, UpdateThingShadow, DeleteThingShadow, ListNamedShadowsForThing and Publish.
/// </summary>
public static class DataPlaneApi
{
    /// <summary>AWS IoT's limit on a topic name, in UTF-8 bytes.</summary>
    private const int MaxTopicBytes = 256;

    public static IEndpointRouteBuilder MapDataPlaneApi(this IEndpointRouteBuilder app, int maxPayloadBytes)
    {
        app.MapGet("/things/{thingName}/shadow", GetShadowAsync).WithName("GetThingShadow");
        app.MapPost("/things/{thingName}/shadow", UpdateShadowAsync).WithName("UpdateThingShadow");
        app.MapDelete("/things/{thingName}/shadow", DeleteShadowAsync).WithName("DeleteThingShadow");
        app.MapGet("/api/things/shadow/ListNamedShadowsForThing/{thingName}", ListNamedShadows).WithName("ListNamedShadowsForThing");
        app.MapPost("/topics/{**topic}", (string topic, HttpRequest request, IMessagePublisher publisher) => PublishAsync(topic, request, publisher, maxPayloadBytes))
            .WithName("Publish");
        return app;
    }

    private static async Task<IResult> GetShadowAsync(string thingName, string? name, ShadowService shadows) =>
        ToResult(await shadows.GetAsync(new ShadowKey(thingName, name ?? string.Empty), ReadOnlyMemory<byte>.Empty));

    private static async Task<IResult> UpdateShadowAsync(string thingName, string? name, HttpRequest request, ShadowService shadows)
    {
        var body = await ReadBodyAsync(request, shadows.Options.MaxDocumentBytes);
        return body is null
            ? Error(ShadowError.TooLarge)
            : ToResult(await shadows.UpdateAsync(new ShadowKey(thingName, name ?? string.Empty), body));
    }

    private static async Task<IResult> DeleteShadowAsync(string thingName, string? name, ShadowService shadows) =>
        ToResult(await shadows.DeleteAsync(new ShadowKey(thingName, name ?? string.Empty), ReadOnlyMemory<byte>.Empty));

    private static IResult ListNamedShadows(string thingName, string? nextToken, int? pageSize, ShadowService shadows) =>
        ToResult(shadows.ListNamed(thingName, nextToken, pageSize));

    private static async Task<IResult> PublishAsync(string topic, HttpRequest request, IMessagePublisher publisher, int maxPayloadBytes)
    {
        topic = Uri.UnescapeDataString(topic);
        var query = request.Query;
        byte qos = 0;
        if (query.TryGetValue("qos", out var qosText) && !(byte.TryParse(qosText, out qos) && qos <= 1))
        {
            return AwsResults.Error("InvalidRequestException", 400, $"qos must be 0 or 1, not '{qosText}'.");
        }

        var retain = false;
        if (query.TryGetValue("retain", out var retainText) && !bool.TryParse(retainText, out retain))
        {
            return AwsResults.Error("InvalidRequestException", 400, $"retain must be true or false, not '{retainText}'.");
        }

        if (topic.Length == 0 || System.Text.Encoding.UTF8.GetByteCount(topic) > MaxTopicBytes || !Core.Topics.TopicValidator.IsValidTopicName(topic))
        {
            return AwsResults.Error("InvalidRequestException", 400, $"'{topic}' is not a valid topic name: 1 to {MaxTopicBytes} bytes of UTF-8, no '+' or '#'.");
        }

        var payload = await ReadBodyAsync(request, maxPayloadBytes);
        if (payload is null)
        {
            return AwsResults.Error("RequestEntityTooLargeException", 413, $"The payload exceeds the maximum size of {maxPayloadBytes} bytes.");
        }

        await publisher.PublishAsync(topic, payload, qos, retain);
        return AwsResults.Empty();
    }

    /// <summary>The request body, or null when it is longer than <paramref name="limit"/> bytes.</summary>
    private static async Task<byte[]?> ReadBodyAsync(HttpRequest request, int limit)
    {
        if (request.ContentLength > limit)
        {
            return null;
        }

        using var buffer = new MemoryStream();
        var chunk = new byte[8192];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, request.HttpContext.RequestAborted)) > 0)
        {
            if (buffer.Length + read > limit)
            {
                return null;
            }

            await buffer.WriteAsync(chunk.AsMemory(0, read), request.HttpContext.RequestAborted);
        }

        return buffer.ToArray();
    }

    private static IResult ToResult(ShadowResult result) => result.Accepted
        ? Results.Bytes(result.Document!, "application/json")
        : Error(result.Error!);

    private static IResult Error(ShadowError error) => AwsResults.Error(error.ErrorType, error.Code, error.Message);
}
