using System.Buffers;
using System.Text.Json.Nodes;

namespace Trellis.Device;

/// <summary>A shadow document as the service returns it: state sections, version and timestamp.</summary>
public sealed record ShadowDocument(JsonObject? Desired, JsonObject? Reported, JsonObject? Delta, long Version, long Timestamp);

/// <summary>
/// One shadow of the device's thing, over the <c>$aws/things/{thing}/shadow/…</c> topics, with
/// AWS IoT's semantics. Requests are correlated with their replies by <c>clientToken</c>.
/// </summary>
public sealed class ShadowClient
{
    private readonly TrellisDevice _device;
    private readonly string _prefix;
    private readonly PendingReplies _replies;
    private readonly Lock _subscribeLock = new();
    private Func<JsonObject, JsonObject?>? _onDelta;
    private Task? _subscribed;

    internal ShadowClient(TrellisDevice device, string? name)
    {
        _device = device;
        _replies = new PendingReplies(device);
        Name = name;
        _prefix = name is null ? $"$aws/things/{device.ThingName}/shadow" : $"$aws/things/{device.ThingName}/shadow/name/{name}";
    }

    /// <summary>The shadow's name; null for the classic shadow.</summary>
    public string? Name { get; }

    /// <summary>The last version this client saw (from any reply or delta), 0 before the first.</summary>
    public long LastVersion { get; private set; }

    /// <summary>Raised after a delta was handled and its result reported (for logging and tests).</summary>
    public event Action<JsonObject, long>? DeltaApplied;

    /// <summary>Raised when a delta handler or the report after it fails; the device stays connected.</summary>
    public event Action<Exception>? DeltaFailed;

    /// <summary>
    /// Sets what to do with a delta (desired values that differ from reported). The handler applies
    /// the values to the device and returns what to report: usually the delta itself, or only the
    /// keys it could apply; null reports nothing. Runs for deltas pushed by the service and, at
    /// <see cref="StartAsync"/>, for a delta that built up while the device was offline.
    /// </summary>
    public void OnDelta(Func<JsonObject, JsonObject?> handler) => _onDelta = handler;

    /// <summary>Subscribes to the reply and delta topics, then fetches the shadow and handles a pending delta.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        await EnsureSubscribedAsync(cancellationToken);
        if (_onDelta is null)
        {
            return;
        }

        ShadowDocument? current;
        try
        {
            current = await GetAsync(cancellationToken);
        }
        catch (ShadowRejectedException e) when (e.Code == 404)
        {
            return;
        }

        if (current?.Delta is { } delta)
        {
            await HandleDeltaAsync(delta, current.Version);
        }
    }

    /// <summary>Reads the shadow; null when it does not exist.</summary>
    public async Task<ShadowDocument?> GetAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            var reply = await RequestAsync("get", [], cancellationToken);
            var state = reply["state"] as JsonObject;
            return new ShadowDocument(
                state?["desired"] as JsonObject,
                state?["reported"] as JsonObject,
                state?["delta"] as JsonObject,
                reply["version"]?.GetValue<long>() ?? 0,
                reply["timestamp"]?.GetValue<long>() ?? 0);
        }
        catch (ShadowRejectedException e) when (e.Code == 404)
        {
            return null;
        }
    }

    /// <summary>Merges <paramref name="reported"/> into the reported state. Returns the new version.</summary>
    public Task<long> ReportAsync(JsonObject reported, CancellationToken cancellationToken = default) =>
        UpdateAsync(null, reported, null, cancellationToken);

    /// <summary>Merges <paramref name="desired"/> into the desired state (what an application asks of the device). Returns the new version.</summary>
    public Task<long> DesireAsync(JsonObject desired, CancellationToken cancellationToken = default) =>
        UpdateAsync(desired, null, null, cancellationToken);

    /// <summary>
    /// Updates the shadow. Null values delete keys. With <paramref name="expectedVersion"/> the update
    /// applies only if the shadow is still at that version (else <see cref="ShadowRejectedException"/> 409).
    /// </summary>
    public async Task<long> UpdateAsync(JsonObject? desired, JsonObject? reported, long? expectedVersion = null, CancellationToken cancellationToken = default)
    {
        var state = new JsonObject();
        if (desired is not null)
        {
            state["desired"] = desired.DeepClone();
        }

        if (reported is not null)
        {
            state["reported"] = reported.DeepClone();
        }

        var request = new JsonObject { ["state"] = state };
        if (expectedVersion is { } version)
        {
            request["version"] = version;
        }

        var reply = await RequestAsync("update", request, cancellationToken);
        return reply["version"]?.GetValue<long>() ?? 0;
    }

    /// <summary>Deletes the shadow (its version keeps counting). Returns the version deleted.</summary>
    public async Task<long> DeleteAsync(CancellationToken cancellationToken = default)
    {
        var reply = await RequestAsync("delete", [], cancellationToken);
        return reply["version"]?.GetValue<long>() ?? 0;
    }

    /// <summary>Subscribes once to the reply and delta topics (again after a failed attempt).</summary>
    private async Task EnsureSubscribedAsync(CancellationToken cancellationToken)
    {
        Task subscribing;
        lock (_subscribeLock)
        {
            if (_subscribed is { IsFaulted: true } or { IsCanceled: true })
            {
                _subscribed = null;
            }

            subscribing = _subscribed ??= _device.SubscribeAsync(
                [
                    $"{_prefix}/get/accepted", $"{_prefix}/get/rejected",
                    $"{_prefix}/update/accepted", $"{_prefix}/update/rejected",
                    $"{_prefix}/delete/accepted", $"{_prefix}/delete/rejected",
                    $"{_prefix}/update/delta",
                ],
                OnMessage,
                CancellationToken.None);
        }

        await subscribing.WaitAsync(cancellationToken);
    }

    private async Task<JsonObject> RequestAsync(string operation, JsonObject request, CancellationToken cancellationToken)
    {
        await EnsureSubscribedAsync(cancellationToken);
        return await _replies.RequestAsync($"{_prefix}/{operation}", request, cancellationToken);
    }

    private void OnMessage(string topic, ReadOnlySequence<byte> payload)
    {
        if (PendingReplies.Parse(payload) is not { } body)
        {
            return;
        }

        if (body["version"] is JsonValue v && v.TryGetValue<long>(out var version) && version > LastVersion)
        {
            LastVersion = version;
        }

        if (topic.EndsWith("/update/delta", StringComparison.Ordinal))
        {
            if (body["state"] is JsonObject delta)
            {
                // Off the MQTT receive loop: the handler reports back, which needs that loop for its reply.
                _ = Task.Run(() => HandleDeltaAsync(delta, LastVersion));
            }

            return;
        }

        _replies.Complete(topic, body, reply => new ShadowRejectedException(reply["code"]?.GetValue<int>() ?? 0, reply["message"]?.GetValue<string>() ?? "rejected"));
    }

    private async Task HandleDeltaAsync(JsonObject delta, long version)
    {
        var handler = _onDelta;
        if (handler is null)
        {
            return;
        }

        try
        {
            var report = handler(delta);
            if (report is not null)
            {
                await ReportAsync(report);
            }

            DeltaApplied?.Invoke(delta, version);
        }
        catch (Exception e) when (e is ShadowRejectedException or TimeoutException or InvalidOperationException or MQTTnet.Exceptions.MqttCommunicationException)
        {
            DeltaFailed?.Invoke(e);
        }
    }
}
