using System.Buffers;
using System.Text.Json.Nodes;

namespace Trellis.Device;

/// <summary>A job execution as the service hands it to the device (start-next, get, notify-next).</summary>
public sealed record JobExecution(string JobId, string Status, JsonObject? Document, JsonObject? StatusDetails, long VersionNumber, long ExecutionNumber);

/// <summary>
/// The device side of AWS IoT Jobs over <c>$aws/things/{thing}/jobs/…</c>: notifications of the
/// next pending job, start-next, describe and status updates, correlated by <c>clientToken</c>.
/// </summary>
public sealed class JobsClient
{
    private readonly TrellisDevice _device;
    private readonly string _prefix;
    private readonly PendingReplies _replies;
    private readonly Lock _subscribeLock = new();
    private Task? _subscribed;

    internal JobsClient(TrellisDevice device)
    {
        _device = device;
        _replies = new PendingReplies(device);
        _prefix = $"$aws/things/{device.ThingName}/jobs/";
    }

    /// <summary>Raised (off the MQTT receive loop) with the next pending execution when it changes; null when none is left.</summary>
    public event Func<JobExecution?, Task>? NextChanged;

    /// <summary>Subscribes to notify-next and the reply topics.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        Task subscribing;
        lock (_subscribeLock)
        {
            if (_subscribed is { IsFaulted: true } or { IsCanceled: true })
            {
                _subscribed = null;
            }

            subscribing = _subscribed ??= _device.SubscribeFiltersAsync(
                [_prefix + "notify-next", _prefix + "start-next/+", _prefix + "+/get/+", _prefix + "+/update/+"], _prefix, OnMessage, CancellationToken.None);
        }

        await subscribing.WaitAsync(cancellationToken);
    }

    /// <summary>Moves the next pending execution to IN_PROGRESS and returns it; null when none is pending.</summary>
    public async Task<JobExecution?> StartNextAsync(JsonObject? statusDetails = null, long? stepTimeoutInMinutes = null, CancellationToken cancellationToken = default)
    {
        var request = new JsonObject();
        if (statusDetails is not null)
        {
            request["statusDetails"] = statusDetails.DeepClone();
        }

        if (stepTimeoutInMinutes is { } step)
        {
            request["stepTimeoutInMinutes"] = step;
        }

        var reply = await RequestAsync("start-next", request, cancellationToken);
        return Execution(reply["execution"]);
    }

    /// <summary>Describes an execution (<paramref name="jobId"/> may be <c>$next</c>); null when there is none.</summary>
    public async Task<JobExecution?> DescribeAsync(string jobId, CancellationToken cancellationToken = default)
    {
        var reply = await RequestAsync(jobId + "/get", new JsonObject { ["includeJobDocument"] = true }, cancellationToken);
        return Execution(reply["execution"]);
    }

    /// <summary>
    /// Reports an execution's status (IN_PROGRESS with progress in <paramref name="statusDetails"/>,
    /// or SUCCEEDED, FAILED, REJECTED). Refused with <see cref="JobRejectedException"/> for a stale
    /// <paramref name="expectedVersion"/>, an illegal move or an execution the service ended (canceled, timed out).
    /// </summary>
    public async Task UpdateAsync(string jobId, string status, JsonObject? statusDetails = null, long? expectedVersion = null, CancellationToken cancellationToken = default)
    {
        var request = new JsonObject { ["status"] = status };
        if (statusDetails is not null)
        {
            request["statusDetails"] = statusDetails.DeepClone();
        }

        if (expectedVersion is { } version)
        {
            request["expectedVersion"] = version;
        }

        await RequestAsync(jobId + "/update", request, cancellationToken);
    }

    private static JobExecution? Execution(JsonNode? node) => node is not JsonObject e ? null : new JobExecution(
        e["jobId"]?.GetValue<string>() ?? string.Empty,
        e["status"]?.GetValue<string>() ?? string.Empty,
        e["jobDocument"] as JsonObject,
        e["statusDetails"] as JsonObject,
        e["versionNumber"]?.GetValue<long>() ?? 0,
        e["executionNumber"]?.GetValue<long>() ?? 0);

    private async Task<JsonObject> RequestAsync(string operation, JsonObject request, CancellationToken cancellationToken)
    {
        await StartAsync(cancellationToken);
        return await _replies.RequestAsync(_prefix + operation, request, cancellationToken);
    }

    private void OnMessage(string topic, ReadOnlySequence<byte> payload)
    {
        if (PendingReplies.Parse(payload) is not { } body)
        {
            return;
        }

        if (topic.EndsWith("/notify-next", StringComparison.Ordinal))
        {
            if (NextChanged is { } handler)
            {
                var next = Execution(body["execution"]);
                _ = Task.Run(() => handler(next));
            }

            return;
        }

        _replies.Complete(topic, body, reply => new JobRejectedException(reply["code"]?.GetValue<string>() ?? "Unknown", reply["message"]?.GetValue<string>() ?? "rejected"));
    }
}

/// <summary>The jobs service refused a request (the <c>…/rejected</c> document's code and message).</summary>
public sealed class JobRejectedException : Exception
{
    public JobRejectedException()
    {
    }

    public JobRejectedException(string message)
        : base(message)
    {
    }

    public JobRejectedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public JobRejectedException(string code, string message)
        : base($"jobs request rejected: {code} {message}")
    {
        Code = code;
        Reason = message;
    }

    /// <summary>AWS's code: InvalidRequest, InvalidStateTransition, TerminalStateReached, VersionMismatch, ResourceNotFound …</summary>
    public string? Code { get; }

    public string? Reason { get; }
}
