using System.Text.Json;
using Trellis.Shadows;

namespace Trellis.Api.Aws.IotData;

/// <summary>The limit of an HTTPS publish's payload: the broker's packet limit.</summary>
public sealed record IotDataLimits(int MaxPayloadBytes);

/// <summary>
/// The AWS IoT data plane (signing name <c>iotdata</c>), as <c>boto3.client("iot-data")</c> calls it:
/// shadows (classic and named) and Publish. Shadow documents travel as the whole body, both ways.
/// </summary>
public sealed class IotDataOperations(ShadowService shadows, IMessagePublisher publisher, IotDataLimits limits) : IIotDataOperations
{
    /// <summary>AWS IoT's limit on a topic name, in UTF-8 bytes.</summary>
    private const int MaxTopicBytes = 256;

    public async Task<GetThingShadowResponse> GetThingShadowAsync(GetThingShadowRequest request, CancellationToken cancellationToken) =>
        new() { Payload = Document(await shadows.GetAsync(Key(request.ThingName, request.ShadowName), ReadOnlyMemory<byte>.Empty)) };

    public async Task<UpdateThingShadowResponse> UpdateThingShadowAsync(UpdateThingShadowRequest request, CancellationToken cancellationToken)
    {
        if (request.Payload.Length > shadows.Options.MaxDocumentBytes)
        {
            Refuse(ShadowError.TooLarge);
        }

        return new() { Payload = Document(await shadows.UpdateAsync(Key(request.ThingName, request.ShadowName), request.Payload)) };
    }

    public async Task<DeleteThingShadowResponse> DeleteThingShadowAsync(DeleteThingShadowRequest request, CancellationToken cancellationToken) =>
        new() { Payload = Document(await shadows.DeleteAsync(Key(request.ThingName, request.ShadowName), ReadOnlyMemory<byte>.Empty)) };

    public Task<ListNamedShadowsForThingResponse> ListNamedShadowsForThingAsync(ListNamedShadowsForThingRequest request, CancellationToken cancellationToken)
    {
        using var page = JsonDocument.Parse(Document(shadows.ListNamed(request.ThingName, request.NextToken, request.PageSize)));
        var root = page.RootElement;
        return Task.FromResult(new ListNamedShadowsForThingResponse
        {
            Results = [.. root.GetProperty("results").EnumerateArray().Select(r => r.GetString()!)],
            NextToken = root.TryGetProperty("nextToken", out var next) ? next.GetString() : null,
            Timestamp = root.GetProperty("timestamp").GetInt64(),
        });
    }

    public async Task<AwsEmpty> PublishAsync(PublishRequest request, CancellationToken cancellationToken)
    {
        var topic = request.Topic;
        if (topic.Length == 0 || System.Text.Encoding.UTF8.GetByteCount(topic) > MaxTopicBytes || !Core.Topics.TopicValidator.IsValidTopicName(topic))
        {
            throw new AwsErrorException("InvalidRequestException", 400, $"'{topic}' is not a valid topic name: 1 to {MaxTopicBytes} bytes of UTF-8, no '+' or '#'.");
        }

        var payload = request.Payload ?? [];
        if (payload.Length > limits.MaxPayloadBytes)
        {
            throw new AwsErrorException("RequestEntityTooLargeException", 413, $"The payload exceeds the maximum size of {limits.MaxPayloadBytes} bytes.");
        }

        await publisher.PublishAsync(topic, payload, (byte)(request.Qos ?? 0), request.Retain ?? false);
        return AwsEmpty.Instance;
    }

    private static ShadowKey Key(string thingName, string? shadowName) => new(thingName, shadowName ?? string.Empty);

    private static byte[] Document(ShadowResult result)
    {
        if (result.Error is { } error)
        {
            Refuse(error);
        }

        return result.Document!;
    }

    private static void Refuse(ShadowError error) => throw new AwsErrorException(error.ErrorType, error.Code, error.Message);
}
