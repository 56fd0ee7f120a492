using System.Text.Json;
using System.Text.Json.Nodes;

namespace Trellis.Jobs;

/// <summary>What happens around an execution's change: retries, the abort check, completion, notifications and events.</summary>
public sealed partial class JobService
{
    /// <summary>A thing's pending job ids and its next execution, taken before a change, to tell afterwards what to announce.</summary>
    private readonly record struct PendingSnapshot(string Jobs, string? Next);

    private PendingSnapshot Snapshot(string thing) => Snapshot(_store.PendingExecutions(thing));

    private static PendingSnapshot Snapshot(IReadOnlyList<JobExecutionRecord> pending) =>
        new(string.Join('\n', pending.Select(e => e.JobId).Order(StringComparer.Ordinal)), Next(pending) is { } next ? $"{next.JobId}\n{next.ExecutionNumber}" : null);

    /// <summary>The execution a device should work on next: one IN_PROGRESS, else the oldest QUEUED.</summary>
    private static JobExecutionRecord? Next(IReadOnlyList<JobExecutionRecord> pending) =>
        pending.FirstOrDefault(e => e.Status == ExecutionStatus.InProgress) ?? (pending.Count > 0 ? pending[0] : null);

    /// <summary>
    /// Sends <c>jobs/notify</c> when the thing's list of pending jobs changed and <c>jobs/notify-next</c>
    /// when its next execution changed, as AWS IoT does.
    /// </summary>
    private void NotifyChanges(string thing, PendingSnapshot before, Notes notes, JobRecord? known = null) =>
        Announce(thing, before, _store.PendingExecutions(thing), notes, known);

    /// <summary>What <see cref="NotifyChanges"/> sends, given the thing's pending executions after the change.</summary>
    private void Announce(string thing, PendingSnapshot before, IReadOnlyList<JobExecutionRecord> pending, Notes notes, JobRecord? known)
    {
        var after = Snapshot(pending);
        var timestamp = NowMs / 1000;
        if (after.Jobs != before.Jobs)
        {
            notes.Reply(JobTopics.Notify(thing), () => Json(w =>
            {
                w.WriteStartObject();
                w.WriteNumber("timestamp", timestamp);
                w.WriteStartObject("jobs");
                foreach (var status in new[] { ExecutionStatus.InProgress, ExecutionStatus.Queued })
                {
                    if (pending.Any(e => e.Status == status))
                    {
                        w.WriteStartArray(status);
                        foreach (var e in pending.Where(e => e.Status == status).Take(15))
                        {
                            WriteSummary(w, e);
                        }

                        w.WriteEndArray();
                    }
                }

                w.WriteEndObject();
                w.WriteEndObject();
            }));
        }

        if (after.Next != before.Next)
        {
            var next = Next(pending);
            var job = next is null ? null : next.JobId == known?.JobId ? known : _store.GetJob(next.JobId);
            notes.Reply(JobTopics.NotifyNext(thing), () => Json(w =>
            {
                w.WriteStartObject();
                w.WriteNumber("timestamp", timestamp);
                if (next is not null && job is not null)
                {
                    w.WritePropertyName("execution");
                    WriteExecutionData(w, next, DeviceDocument(job));
                }

                w.WriteEndObject();
            }));
        }
    }

    /// <summary>The execution in a terminal state: one more version, no time-out left.</summary>
    private JobExecutionRecord Finish(JobExecutionRecord execution, string status, IReadOnlyDictionary<string, string>? details, bool forceCanceled = false) => execution with
    {
        Status = status,
        StatusDetails = details ?? execution.StatusDetails,
        Version = execution.Version + 1,
        UpdatedMs = NowMs,
        TimeoutAtMs = null,
        ForceCanceled = forceCanceled,
    };

    /// <summary>
    /// After an execution reached a terminal state (already saved): its event, a retry when the job's
    /// retry rules allow one, then the abort check and, for a SNAPSHOT job, completion.
    /// </summary>
    private void AfterTerminal(JobRecord job, JobExecutionRecord execution, Notes notes)
    {
        notes.Event($"$aws/events/jobExecution/{job.JobId}/{execution.Status.ToLowerInvariant()}", ExecutionEvent(execution, execution.Status.ToLowerInvariant()));
        if (job.Status != JobStatus.InProgress)
        {
            return;
        }

        if (execution.Status is ExecutionStatus.Failed or ExecutionStatus.TimedOut
            && job.Settings.Retry.FirstOrDefault(r => r.FailureType == execution.Status || r.FailureType == "ALL") is { } rule
            && execution.RetryAttempt < rule.NumberOfRetries)
        {
            var now = NowMs;
            _store.Save(null, [new JobExecutionRecord
            {
                JobId = job.JobId,
                Thing = execution.Thing,
                ExecutionNumber = execution.ExecutionNumber + 1,
                Status = ExecutionStatus.Queued,
                QueuedMs = now,
                UpdatedMs = now,
                RetryAttempt = execution.RetryAttempt + 1,
            }]);
            return;
        }

        if (!CheckAbort(job, notes))
        {
            CheckCompleted(job, notes);
        }
    }

    /// <summary>Cancels the job when one of its abort rules is met; true when it did.</summary>
    private bool CheckAbort(JobRecord job, Notes notes)
    {
        if (job.Settings.Abort.Count == 0)
        {
            return false;
        }

        var counts = _store.CountByStatus(job.JobId);
        int Count(string status) => counts.GetValueOrDefault(status);
        var executed = Count(ExecutionStatus.Succeeded) + Count(ExecutionStatus.Failed) + Count(ExecutionStatus.Rejected) + Count(ExecutionStatus.TimedOut);
        foreach (var rule in job.Settings.Abort)
        {
            var failures = rule.FailureType == "ALL" ? Count(ExecutionStatus.Failed) + Count(ExecutionStatus.Rejected) + Count(ExecutionStatus.TimedOut) : Count(rule.FailureType);
            if (executed >= Math.Max(1, rule.MinNumberOfExecutedThings) && failures * 100.0 / executed >= rule.ThresholdPercentage)
            {
                LogJobAborted(_logger, job.JobId, failures, executed, rule.FailureType, rule.ThresholdPercentage);
                CancelLocked(job, "ABORTED", $"Aborted: {failures} of {executed} executed things ended {rule.FailureType} ({failures * 100.0 / executed:0.#} %, the threshold is {rule.ThresholdPercentage} %).", force: false, notes);
                return true;
            }
        }

        return false;
    }

    /// <summary>A SNAPSHOT job whose things have all been reached and finished is COMPLETED.</summary>
    private void CheckCompleted(JobRecord job, Notes notes)
    {
        if (job.TargetSelection != "SNAPSHOT" || job.Status != JobStatus.InProgress || _store.PendingTargetCount(job.JobId) > 0)
        {
            return;
        }

        var counts = _store.CountByStatus(job.JobId);
        if (counts.GetValueOrDefault(ExecutionStatus.Queued) + counts.GetValueOrDefault(ExecutionStatus.InProgress) > 0)
        {
            return;
        }

        var now = NowMs;
        var completed = job with { Status = JobStatus.Completed, UpdatedMs = now, CompletedMs = now };
        _store.Save(completed, []);
        notes.Event($"$aws/events/job/{job.JobId}/completed", JobEvent(completed, "completed"));
    }

    private JobRecord CancelLocked(JobRecord job, string? reasonCode, string? comment, bool force, Notes notes)
    {
        var now = NowMs;
        var pending = _store.PendingExecutionsOfJob(job.JobId);
        var affected = pending.Where(e => e.Status == ExecutionStatus.Queued || force).ToList();
        var before = affected.Select(e => (e.Thing, Snapshot(e.Thing))).ToList();
        var canceled = affected.Select(e => Finish(e, ExecutionStatus.Canceled, null, forceCanceled: e.Status == ExecutionStatus.InProgress)).ToList();
        var updated = job with
        {
            Status = JobStatus.Canceled,
            ReasonCode = reasonCode ?? job.ReasonCode,
            Comment = comment ?? job.Comment,
            ForceCanceled = force || job.ForceCanceled,
            UpdatedMs = now,
        };
        _store.Save(updated, canceled, _store.PendingTargets(job.JobId, int.MaxValue));
        foreach (var (thing, snapshot) in before)
        {
            NotifyChanges(thing, snapshot, notes);
        }

        foreach (var execution in canceled)
        {
            notes.Event($"$aws/events/jobExecution/{job.JobId}/canceled", ExecutionEvent(execution, "canceled"));
        }

        if (job.Status != JobStatus.Canceled)
        {
            notes.Event($"$aws/events/job/{job.JobId}/canceled", JobEvent(updated, "canceled"));
        }

        return updated;
    }

    /// <summary>AWS's JobExecutionSummary, as notify and get send it.</summary>
    private static JsonObject Summary(JobExecutionRecord e) => JsonNode.Parse(Json(w => WriteSummary(w, e)))!.AsObject();

    private static void WriteSummary(Utf8JsonWriter w, JobExecutionRecord e)
    {
        w.WriteStartObject();
        w.WriteString("jobId", e.JobId);
        w.WriteNumber("queuedAt", e.QueuedMs / 1000);
        if (e.StartedMs is { } started)
        {
            w.WriteNumber("startedAt", started / 1000);
        }

        w.WriteNumber("lastUpdatedAt", e.UpdatedMs / 1000);
        w.WriteNumber("versionNumber", e.Version);
        w.WriteNumber("executionNumber", e.ExecutionNumber);
        w.WriteEndObject();
    }

    /// <summary>AWS's JobExecutionData (device side); the document as JSON when <paramref name="document"/> is given.</summary>
    private JsonObject ExecutionData(JobExecutionRecord e, string? document) => JsonNode.Parse(Json(w => WriteExecutionData(w, e, document)))!.AsObject();

    private void WriteExecutionData(Utf8JsonWriter w, JobExecutionRecord e, string? document)
    {
        w.WriteStartObject();
        w.WriteString("jobId", e.JobId);
        w.WriteString("thingName", e.Thing);
        if (document is not null)
        {
            // Checked to be a JSON object when the job was created.
            w.WritePropertyName("jobDocument");
            w.WriteRawValue(document, skipInputValidation: true);
        }

        w.WriteString("status", e.Status);
        w.WriteStartObject("statusDetails");
        foreach (var (key, value) in e.StatusDetails)
        {
            w.WriteString(key, value);
        }

        w.WriteEndObject();
        w.WriteNumber("queuedAt", e.QueuedMs / 1000);
        if (e.StartedMs is { } started)
        {
            w.WriteNumber("startedAt", started / 1000);
        }

        w.WriteNumber("lastUpdatedAt", e.UpdatedMs / 1000);
        if (SecondsBeforeTimeout(e) is { } seconds)
        {
            w.WriteNumber("approximateSecondsBeforeTimedOut", seconds);
        }

        w.WriteNumber("versionNumber", e.Version);
        w.WriteNumber("executionNumber", e.ExecutionNumber);
        w.WriteEndObject();
    }

    /// <summary>The UTF-8 JSON a writer callback produces.</summary>
    private static byte[] Json(Action<Utf8JsonWriter> write)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer))
        {
            write(w);
        }

        return buffer.WrittenSpan.ToArray();
    }

    public long? SecondsBeforeTimeout(JobExecutionRecord execution) =>
        execution.TimeoutAtMs is { } at ? Math.Max(0, (at - NowMs) / 1000) : null;

    private static JsonObject Details(IReadOnlyDictionary<string, string> details)
    {
        var node = new JsonObject();
        foreach (var (key, value) in details)
        {
            node[key] = value;
        }

        return node;
    }

    private JsonObject JobEvent(JobRecord job, string operation)
    {
        var counts = _store.CountByStatus(job.JobId);
        var details = new JsonObject();
        foreach (var status in ExecutionStatus.All)
        {
            details["numberOf" + Pascal(status) + "Things"] = counts.GetValueOrDefault(status);
        }

        var body = new JsonObject
        {
            ["eventType"] = "JOB",
            ["eventId"] = Guid.NewGuid().ToString("N"),
            ["timestamp"] = NowMs / 1000,
            ["operation"] = operation,
            ["jobId"] = job.JobId,
            ["status"] = job.Status,
            ["targetSelection"] = job.TargetSelection,
            ["targets"] = new JsonArray([.. job.Targets.Select(t => (JsonNode?)t)]),
            ["description"] = job.Description,
            ["createdAt"] = job.CreatedMs / 1000,
            ["lastUpdatedAt"] = job.UpdatedMs / 1000,
            ["jobProcessDetails"] = details,
        };
        if (job.CompletedMs is { } completed)
        {
            body["completedAt"] = completed / 1000;
        }

        if (job.ReasonCode is not null || job.Comment is not null)
        {
            body["reasonCode"] = job.ReasonCode;
            body["comment"] = job.Comment;
        }

        return body;
    }

    private JsonObject ExecutionEvent(JobExecutionRecord e, string operation) => new()
    {
        ["eventType"] = "JOB_EXECUTION",
        ["eventId"] = Guid.NewGuid().ToString("N"),
        ["timestamp"] = NowMs / 1000,
        ["operation"] = operation,
        ["jobId"] = e.JobId,
        ["thingArn"] = _targets.Arn("thing/" + e.Thing),
        ["status"] = e.Status,
        ["executionNumber"] = e.ExecutionNumber,
        ["statusDetails"] = Details(e.StatusDetails),
    };

    /// <summary>IN_PROGRESS → InProgress, as jobProcessDetails names its counts.</summary>
    public static string Pascal(string status) =>
        string.Concat(status.Split('_').Select(p => p[0] + p[1..].ToLowerInvariant()));

    /// <summary>
    /// Replies and events gathered under the lock and sent after it, in order, by the sender thread
    /// (<see cref="Post"/>): no publish ever waits for the store, and the JSON of a large release is
    /// written on the other core while the next part of the release is stored.
    /// </summary>
    private sealed class Notes
    {
        private readonly List<(string Topic, Func<byte[]> Payload, bool IsEvent)> _items = [];

        public bool IsEmpty => _items.Count == 0;

        /// <summary>A notification to a thing's subscribers; <paramref name="payload"/> runs on the sender thread, so it must read only what it captured.</summary>
        public void Reply(string topic, Func<byte[]> payload) => _items.Add((topic, payload, false));

        public void Event(string topic, JsonObject body) => _items.Add((topic, () => System.Text.Encoding.UTF8.GetBytes(body.ToJsonString()), true));

        public void Send(IJobPublisher publisher)
        {
            foreach (var (topic, payload, isEvent) in _items)
            {
                if (isEvent)
                {
                    publisher.Publish(topic, payload());
                }
                else if (publisher.Wanted(topic))
                {
                    // Most fleets subscribe to notify-next only: a notify nobody would receive is not even built.
                    publisher.Reply(topic, payload(), null);
                }
            }
        }
    }

    [Microsoft.Extensions.Logging.LoggerMessage(Level = Microsoft.Extensions.Logging.LogLevel.Warning, Message = "Job {JobId} aborted: {Failures} of {Executed} executed things ended {FailureType}, at or above its {Threshold} % threshold; its queued executions are canceled")]
    private static partial void LogJobAborted(Microsoft.Extensions.Logging.ILogger logger, string jobId, int failures, int executed, string failureType, double threshold);
}
