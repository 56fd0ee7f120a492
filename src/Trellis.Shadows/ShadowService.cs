using System.Collections.Concurrent;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;

namespace Trellis.Shadows;

/// <summary>Where the shadow service publishes its replies and notifications (the broker, in the server).</summary>
public interface IShadowPublisher
{
    /// <summary>
    /// Publishes to every subscriber of <paramref name="topic"/> and, when
    /// <paramref name="requesterClientId"/> is given, to that client too even if it has not
    /// subscribed (as AWS does for shadow replies). Receive policies still apply.
    /// </summary>
    void Publish(string topic, byte[] payload, string? requesterClientId);

    /// <summary>Whether anyone subscribes to <paramref name="topic"/> (notifications nobody receives are not built).</summary>
    bool HasSubscribers(string topic);
}

/// <summary>The answer to one shadow request: a JSON document, or an error.</summary>
public sealed record ShadowResult(byte[]? Document, ShadowError? Error)
{
    public bool Accepted => Error is null;

    public static ShadowResult Ok(JsonObject document) => new(Encoding.UTF8.GetBytes(document.ToJsonString()), null);

    public static ShadowResult Fail(ShadowError error) => new(null, error);
}

/// <summary>
/// Device shadows with AWS IoT semantics: get, update (merge, versions, delta, documents) and
/// delete of classic and named shadows. Requests on one shadow are serialized; requests on
/// different shadows run in parallel and share group commits. Every accepted change is durable
/// before its reply is published or returned.
/// </summary>
public sealed partial class ShadowService(
    ShadowStore store,
    ShadowOptions options,
    IShadowPublisher publisher,
    Func<string, bool> thingExists,
    TimeProvider time,
    ILogger<ShadowService> logger)
{
    private readonly ConcurrentDictionary<ShadowKey, Entry> _entries = new();
    private readonly ConcurrentDictionary<string, RateBucket> _rates = new(StringComparer.Ordinal);

    // Things known to exist: a registry lookup per request would put SQLite on every update.
    // Creation needs no invalidation; deletion calls ForgetThing.
    private readonly ConcurrentDictionary<string, byte> _knownThings = new(StringComparer.Ordinal);
    private long _updates;
    private long _rejected;

    public ShadowOptions Options => options;

    /// <summary>
    /// Raised after a shadow's new document was committed (an update, or a delete: then the
    /// document does not exist). Raised while the shadow's gate is held, in commit order per shadow:
    /// handlers only take note.
    /// </summary>
    public event Action<ShadowKey, ShadowDocument>? Changed;

    /// <summary>Updates accepted since start.</summary>
    public long AcceptedUpdates => Interlocked.Read(ref _updates);

    /// <summary>Requests rejected since start (any operation).</summary>
    public long RejectedRequests => Interlocked.Read(ref _rejected);

    /// <summary>
    /// Handles a request published on an MQTT shadow topic and publishes the reply to
    /// <c>…/accepted</c> or <c>…/rejected</c> (also straight to the requester). Returns false when
    /// the topic is not a shadow request.
    /// </summary>
    public async Task<bool> HandleMqttAsync(string topic, ReadOnlyMemory<byte> payload, string? clientId)
    {
        if (!ShadowTopic.TryParseRequest(topic, out var key, out var operation))
        {
            return false;
        }

        var result = operation switch
        {
            ShadowOperation.Get => await GetAsync(key, payload),
            ShadowOperation.Update => await UpdateAsync(key, payload, clientId),
            _ => await DeleteAsync(key, payload, clientId),
        };
        var reply = $"{key.TopicPrefix}/{OperationName(operation)}/{(result.Accepted ? "accepted" : "rejected")}";
        if (result.Accepted)
        {
            // Update and delete already published their accepted documents (for HTTP callers too).
            if (operation == ShadowOperation.Get)
            {
                publisher.Publish(reply, result.Document!, clientId);
            }
        }
        else
        {
            publisher.Publish(reply, Rejection(result.Error!, TokenOf(payload)), clientId);
        }

        return true;
    }

    /// <summary>Reads a shadow: full state with delta, metadata, version.</summary>
    public async Task<ShadowResult> GetAsync(ShadowKey key, ReadOnlyMemory<byte> payload)
    {
        var error = ShadowRequest.ParseSimple(payload.Span, options, out var clientToken) ?? ValidateKey(key);
        if (error is not null)
        {
            return Reject(error);
        }

        var entry = _entries.GetOrAdd(key, static _ => new Entry());
        ShadowDocument document;
        await entry.Gate.WaitAsync();
        try
        {
            document = Current(key, entry);
        }
        finally
        {
            entry.Gate.Release();
        }

        if (!document.Exists)
        {
            return Reject(ShadowError.NoShadow(key));
        }

        var body = new JsonObject
        {
            ["state"] = document.StateNode(withDelta: true),
            ["metadata"] = document.MetadataNode(),
            ["version"] = document.Version,
            ["timestamp"] = document.Timestamp,
        };
        AddToken(body, clientToken);
        return ShadowResult.Ok(body);
    }

    /// <summary>
    /// Applies an update. On success the accepted document is returned and published to
    /// <c>/update/accepted</c>, <c>/update/documents</c> and, when desired changed and differs
    /// from reported, <c>/update/delta</c>.
    /// </summary>
    public async Task<ShadowResult> UpdateAsync(ShadowKey key, ReadOnlyMemory<byte> payload, string? requesterClientId = null)
    {
        var error = ShadowRequest.ParseUpdate(payload.Span, options, out var update, out _) ?? ValidateKey(key);
        if (error is not null)
        {
            return Reject(error);
        }

        if (!TryTakeUpdateToken(key.Thing))
        {
            return Reject(ShadowError.Throttled);
        }

        var entry = _entries.GetOrAdd(key, static _ => new Entry());
        ShadowDocument previous, next;
        var now = time.GetUtcNow();
        var timestamp = now.ToUnixTimeSeconds();
        await entry.Gate.WaitAsync();
        try
        {
            previous = Current(key, entry);
            if (update!.Version is { } expected && expected != previous.Version)
            {
                return Reject(ShadowError.VersionConflict);
            }

            next = previous.Apply(update, timestamp);
            if (next.StateBytes() > options.MaxDocumentBytes)
            {
                return Reject(new ShadowError(413, $"The shadow state document would exceed the maximum size of {options.MaxDocumentBytes} bytes"));
            }

            try
            {
                await store.SaveAsync(key, next, now.ToUnixTimeMilliseconds());
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Log.StoreFailed(logger, key.ToString(), e.Message, e);
                return Reject(ShadowError.Internal);
            }

            entry.Document = next;
            Changed?.Invoke(key, next);
        }
        finally
        {
            entry.Gate.Release();
        }

        Interlocked.Increment(ref _updates);
        var accepted = new JsonObject
        {
            ["state"] = update.State.DeepClone(),
            ["metadata"] = AcceptedMetadata(update, timestamp),
            ["version"] = next.Version,
            ["timestamp"] = timestamp,
        };
        AddToken(accepted, update.ClientToken);
        var result = ShadowResult.Ok(accepted);
        publisher.Publish($"{key.TopicPrefix}/update/accepted", result.Document!, requesterClientId);

        if (update.TouchesDesired && next.Delta() is { } delta)
        {
            var message = new JsonObject
            {
                ["version"] = next.Version,
                ["timestamp"] = timestamp,
                ["state"] = delta,
                ["metadata"] = next.DeltaMetadata(delta) ?? [],
            };
            AddToken(message, update.ClientToken);
            publisher.Publish($"{key.TopicPrefix}/update/delta", Encoding.UTF8.GetBytes(message.ToJsonString()), null);
        }

        var documentsTopic = $"{key.TopicPrefix}/update/documents";
        if (publisher.HasSubscribers(documentsTopic))
        {
            var documents = new JsonObject
            {
                ["previous"] = Snapshot(previous),
                ["current"] = Snapshot(next),
                ["timestamp"] = timestamp,
            };
            AddToken(documents, update.ClientToken);
            publisher.Publish(documentsTopic, Encoding.UTF8.GetBytes(documents.ToJsonString()), null);
        }

        return result;
    }

    /// <summary>Deletes a shadow; its version keeps counting for the next update.</summary>
    public async Task<ShadowResult> DeleteAsync(ShadowKey key, ReadOnlyMemory<byte> payload, string? requesterClientId = null)
    {
        var error = ShadowRequest.ParseSimple(payload.Span, options, out var clientToken) ?? ValidateKey(key);
        if (error is not null)
        {
            return Reject(error);
        }

        var entry = _entries.GetOrAdd(key, static _ => new Entry());
        var now = time.GetUtcNow();
        ShadowDocument deleted;
        await entry.Gate.WaitAsync();
        try
        {
            var current = Current(key, entry);
            if (!current.Exists)
            {
                return Reject(ShadowError.NoShadow(key));
            }

            deleted = current.Deleted(now.ToUnixTimeSeconds());
            try
            {
                await store.SaveAsync(key, deleted, now.ToUnixTimeMilliseconds());
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Log.StoreFailed(logger, key.ToString(), e.Message, e);
                return Reject(ShadowError.Internal);
            }

            entry.Document = deleted;
            Changed?.Invoke(key, deleted);
        }
        finally
        {
            entry.Gate.Release();
        }

        var body = new JsonObject { ["version"] = deleted.Version, ["timestamp"] = deleted.Timestamp };
        AddToken(body, clientToken);
        var result = ShadowResult.Ok(body);
        publisher.Publish($"{key.TopicPrefix}/delete/accepted", result.Document!, requesterClientId);
        return result;
    }

    /// <summary>Names of a thing's named shadows, paged (<c>nextToken</c> is the last name returned).</summary>
    public ShadowResult ListNamed(string thing, string? nextToken, int? pageSize)
    {
        if (ValidateKey(new ShadowKey(thing, string.Empty)) is { } error)
        {
            return Reject(error);
        }

        var size = pageSize ?? 25;
        if (size is < 1 or > 100)
        {
            return Reject(ShadowError.Invalid("pageSize must be between 1 and 100"));
        }

        var names = store.ListNamed(thing, nextToken, size + 1);
        var more = names.Count > size;
        if (more)
        {
            names.RemoveAt(names.Count - 1);
        }

        var body = new JsonObject
        {
            ["results"] = new JsonArray([.. names.Select(n => (JsonNode?)n)]),
            ["timestamp"] = time.GetUtcNow().ToUnixTimeSeconds(),
        };
        if (more)
        {
            body["nextToken"] = names[^1];
        }

        return ShadowResult.Ok(body);
    }

    /// <summary>The <c>…/rejected</c> document: code, message, timestamp and the request's clientToken.</summary>
    public byte[] Rejection(ShadowError error, string? clientToken)
    {
        var body = new JsonObject
        {
            ["code"] = error.Code,
            ["message"] = error.Message,
            ["timestamp"] = time.GetUtcNow().ToUnixTimeSeconds(),
        };
        AddToken(body, clientToken);
        return Encoding.UTF8.GetBytes(body.ToJsonString());
    }

    private static string OperationName(ShadowOperation operation) => operation switch
    {
        ShadowOperation.Get => "get",
        ShadowOperation.Update => "update",
        _ => "delete",
    };

    /// <summary>The clientToken of a request that may be invalid, for echoing in its rejection.</summary>
    private string? TokenOf(ReadOnlyMemory<byte> payload)
    {
        try
        {
            return JsonNode.Parse(payload.Span) is JsonObject obj && obj["clientToken"] is JsonValue v && v.TryGetValue<string>(out var token)
                && Encoding.UTF8.GetByteCount(token) <= options.MaxClientTokenBytes ? token : null;
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }

    private static void AddToken(JsonObject body, string? clientToken)
    {
        if (clientToken is not null)
        {
            body["clientToken"] = clientToken;
        }
    }

    private static JsonObject AcceptedMetadata(ShadowUpdate update, long timestamp)
    {
        var metadata = new JsonObject();
        foreach (var (section, value) in update.State)
        {
            metadata[section] = value is null ? new JsonObject { ["timestamp"] = timestamp } : ShadowDocument.MetadataFor(value, timestamp);
        }

        return metadata;
    }

    private static JsonObject Snapshot(ShadowDocument document) => new()
    {
        ["state"] = document.StateNode(withDelta: false),
        ["metadata"] = document.MetadataNode(),
        ["version"] = document.Version,
    };

    private ShadowResult Reject(ShadowError error)
    {
        Interlocked.Increment(ref _rejected);
        return ShadowResult.Fail(error);
    }

    private ShadowError? ValidateKey(ShadowKey key)
    {
        if (!IsValidName(key.Thing, 128))
        {
            return ShadowError.Invalid($"Invalid thing name: '{key.Thing}'");
        }

        if (!key.IsClassic && !IsValidName(key.Name, options.MaxShadowNameLength))
        {
            return ShadowError.Invalid($"Invalid shadow name: '{key.Name}'");
        }

        if (_knownThings.ContainsKey(key.Thing))
        {
            return null;
        }

        if (!thingExists(key.Thing))
        {
            return ShadowError.NoThing(key.Thing);
        }

        _knownThings.TryAdd(key.Thing, 0);
        return null;
    }

    /// <summary>Call when a thing is deleted: its shadows stay stored (as in AWS) but are no longer served.</summary>
    public void ForgetThing(string thing) => _knownThings.TryRemove(thing, out _);

    private static bool IsValidName(string name, int maxLength) =>
        name.Length is > 0 && name.Length <= maxLength && name.All(c => char.IsAsciiLetterOrDigit(c) || c is ':' or '_' or '-');

    /// <summary>The current document of a shadow, loaded from the store on first use. Call under the entry's gate.</summary>
    private ShadowDocument Current(ShadowKey key, Entry entry) =>
        entry.Document ??= store.Load(key) ?? ShadowDocument.Absent();

    private bool TryTakeUpdateToken(string thing)
    {
        var limit = options.MaxUpdatesPerSecondPerThing;
        if (limit <= 0)
        {
            return true;
        }

        var bucket = _rates.GetOrAdd(thing, static (_, l) => new RateBucket(l), limit);
        return bucket.TryTake(time.GetTimestamp(), time.TimestampFrequency, limit);
    }

    private sealed class Entry
    {
        public SemaphoreSlim Gate { get; } = new(1, 1);

        public ShadowDocument? Document { get; set; }
    }

    /// <summary>Token bucket: <c>limit</c> tokens, refilled at <c>limit</c> per second.</summary>
    private sealed class RateBucket(int limit)
    {
        private readonly Lock _lock = new();
        private double _tokens = limit;
        private long _last;

        public bool TryTake(long now, long frequency, int rate)
        {
            lock (_lock)
            {
                if (_last != 0)
                {
                    _tokens = Math.Min(rate, _tokens + ((now - _last) * (double)rate / frequency));
                }

                _last = now;
                if (_tokens < 1)
                {
                    return false;
                }

                _tokens -= 1;
                return true;
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 4001, Level = LogLevel.Error, Message = "Shadow {Shadow}: writing to shadows.db failed ({Reason}); the update was rejected with 500. Check free disk space and the data folder's permissions.")]
        public static partial void StoreFailed(ILogger logger, string shadow, string reason, Exception exception);
    }
}
