using System.Buffers;
using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Trellis.Device;

/// <summary>
/// Request/reply over MQTT as AWS's shadow and jobs topics do it: a request carries a fresh
/// <c>clientToken</c>, and the reply on <c>…/accepted</c> or <c>…/rejected</c> that echoes it
/// completes the request.
/// </summary>
internal sealed class PendingReplies(TrellisDevice device)
{
    private readonly ConcurrentDictionary<string, TaskCompletionSource<JsonObject>> _pending = new(StringComparer.Ordinal);

    /// <summary>The JSON object a message holds; null for anything else.</summary>
    public static JsonObject? Parse(ReadOnlySequence<byte> payload)
    {
        try
        {
            return JsonNode.Parse(payload.ToArray()) as JsonObject;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Publishes <paramref name="request"/> to <paramref name="topic"/> and waits for its reply (the device's request timeout).</summary>
    public async Task<JsonObject> RequestAsync(string topic, JsonObject request, CancellationToken cancellationToken)
    {
        var token = Guid.NewGuid().ToString("N");
        request["clientToken"] = token;
        var reply = new TaskCompletionSource<JsonObject>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[token] = reply;
        try
        {
            await device.PublishAsync(topic, Encoding.UTF8.GetBytes(request.ToJsonString()), 1, cancellationToken);
            return await reply.Task.WaitAsync(device.Options.RequestTimeout, cancellationToken);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"no reply to {topic} within {device.Options.RequestTimeout.TotalSeconds} s: is the device allowed to receive on {topic}/accepted?", e);
        }
        finally
        {
            _pending.TryRemove(token, out _);
        }
    }

    /// <summary>Completes the request a reply answers (a rejection with <paramref name="rejection"/>'s exception); false when it answers none.</summary>
    public bool Complete(string topic, JsonObject body, Func<JsonObject, Exception> rejection)
    {
        if (body["clientToken"] is not JsonValue tokenValue || !tokenValue.TryGetValue<string>(out var token) || !_pending.TryRemove(token, out var waiter))
        {
            return false;
        }

        if (topic.EndsWith("/rejected", StringComparison.Ordinal))
        {
            waiter.TrySetException(rejection(body));
        }
        else
        {
            waiter.TrySetResult(body);
        }

        return true;
    }
}
