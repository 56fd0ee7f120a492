namespace Trellis.Jobs;

/// <summary>The device side: what a thing asks over MQTT (<c>$aws/things/{thing}/jobs/…</c>) or HTTPS (iot-jobs-data).</summary>
public sealed partial class JobService
{
    /// <summary>AWS IoT's bounds on a step time-out, in minutes.</summary>
    private const long MaxStepTimeoutMinutes = 10080;

    /// <summary>The thing's pending executions: IN_PROGRESS ones and QUEUED ones.</summary>
    public DeviceJobResult GetPending(string thing)
    {
        if (!_targets.ThingExists(thing))
        {
            return NoThing(thing);
        }

        var pending = _store.PendingExecutions(thing);
        return new DeviceJobResult
        {
            InProgress = [.. pending.Where(e => e.Status == ExecutionStatus.InProgress)],
            Queued = [.. pending.Where(e => e.Status == ExecutionStatus.Queued)],
        };
    }

    /// <summary>Starts the thing's next execution (an IN_PROGRESS one is returned as it is); no execution when none is pending.</summary>
    public DeviceJobResult StartNext(string thing, IReadOnlyDictionary<string, string>? statusDetails, long? stepTimeoutInMinutes)
    {
        if (!_targets.ThingExists(thing))
        {
            return NoThing(thing);
        }

        if (StepTimeoutError(stepTimeoutInMinutes) is { } invalid)
        {
            return invalid;
        }

        var notes = new Notes();
        DeviceJobResult result;
        lock (_gate)
        {
            var pending = _store.PendingExecutions(thing);
            if (Next(pending) is not { } next || _store.GetJob(next.JobId) is not { } job)
            {
                return new DeviceJobResult();
            }

            if (next.Status == ExecutionStatus.InProgress)
            {
                return new DeviceJobResult { Execution = next, Document = DeviceDocument(job) };
            }

            var started = Start(next, job, statusDetails, stepTimeoutInMinutes);
            _store.Save(null, [started]);
            NotifyChanges(thing, Snapshot(pending), notes, job);
            result = new DeviceJobResult { Execution = started, Document = DeviceDocument(job) };
        }

        Post(notes);
        return result;
    }

    /// <summary>One execution of the thing (<paramref name="jobId"/> may be <c>$next</c>); no execution for <c>$next</c> when none is pending.</summary>
    public DeviceJobResult Describe(string thing, string jobId, long? executionNumber, bool includeJobDocument)
    {
        if (!_targets.ThingExists(thing))
        {
            return NoThing(thing);
        }

        JobExecutionRecord? execution;
        if (jobId == "$next")
        {
            execution = Next(_store.PendingExecutions(thing));
            if (execution is null)
            {
                return new DeviceJobResult();
            }
        }
        else if ((execution = _store.GetExecution(jobId, thing, executionNumber)) is null)
        {
            return new JobDeviceError("ResourceNotFound", $"No execution of job '{jobId}' on thing '{thing}'{(executionNumber is { } n ? $" with number {n}" : string.Empty)}.");
        }

        return new DeviceJobResult { Execution = execution, Document = includeJobDocument && _store.GetJob(execution.JobId) is { } job ? DeviceDocument(job) : null };
    }

    /// <summary>
    /// A device moves its execution on: QUEUED → IN_PROGRESS | SUCCEEDED | FAILED | REJECTED, IN_PROGRESS →
    /// IN_PROGRESS (new details) or one of the three final states. A terminal execution never changes.
    /// </summary>
    public DeviceJobResult Update(string thing, string jobId, JobUpdate update)
    {
        ArgumentNullException.ThrowIfNull(update);
        if (!ExecutionStatus.DeviceMaySet(update.Status))
        {
            return new JobDeviceError("InvalidRequest", $"A device may set status IN_PROGRESS, SUCCEEDED, FAILED or REJECTED, not '{update.Status}'.");
        }

        if (StepTimeoutError(update.StepTimeoutInMinutes) is { } invalid)
        {
            return invalid;
        }

        var notes = new Notes();
        DeviceJobResult result;
        lock (_gate)
        {
            if (_store.GetExecution(jobId, thing, update.ExecutionNumber) is not { } execution || _store.GetJob(jobId) is not { } job)
            {
                return new JobDeviceError("ResourceNotFound", $"No execution of job '{jobId}' on thing '{thing}'{(update.ExecutionNumber is { } n ? $" with number {n}" : string.Empty)}.");
            }

            if (update.ExpectedVersion is { } expected && expected != execution.Version)
            {
                return new JobDeviceError("VersionMismatch", $"The execution is at version {execution.Version}, not the expected {expected}.", execution);
            }

            if (!execution.IsPending)
            {
                return new JobDeviceError("InvalidStateTransition", $"The execution is {execution.Status}, a terminal state: it cannot become {update.Status}.", execution);
            }

            var snapshot = Snapshot(thing);
            JobExecutionRecord updated;
            if (update.Status == ExecutionStatus.InProgress)
            {
                updated = execution.Status == ExecutionStatus.Queued
                    ? Start(execution, job, update.StatusDetails, update.StepTimeoutInMinutes)
                    : execution with
                    {
                        StatusDetails = update.StatusDetails ?? execution.StatusDetails,
                        Version = execution.Version + 1,
                        UpdatedMs = NowMs,
                        TimeoutAtMs = update.StepTimeoutInMinutes is { } step ? Deadline(execution.StartedMs, job, NowMs + (step * 60_000)) : execution.TimeoutAtMs,
                    };
                _store.Save(null, [updated]);
            }
            else
            {
                updated = Finish(execution, update.Status, update.StatusDetails);
                _store.Save(null, [updated]);
                AfterTerminal(job, updated, notes);
            }

            NotifyChanges(thing, snapshot, notes, job);
            result = new DeviceJobResult
            {
                Execution = update.IncludeJobExecutionState ? updated : null,
                Document = update.IncludeJobDocument ? DeviceDocument(job) : null,
            };
        }

        Post(notes);
        Wake();
        return result;
    }

    private JobExecutionRecord Start(JobExecutionRecord execution, JobRecord job, IReadOnlyDictionary<string, string>? details, long? stepTimeoutInMinutes)
    {
        var now = NowMs;
        return execution with
        {
            Status = ExecutionStatus.InProgress,
            StatusDetails = details ?? execution.StatusDetails,
            Version = execution.Version + 1,
            StartedMs = now,
            UpdatedMs = now,
            TimeoutAtMs = Deadline(now, job, stepTimeoutInMinutes is { } step ? now + (step * 60_000) : null),
        };
    }

    /// <summary>The earlier of the job's in-progress time-out (from the start) and the step time-out.</summary>
    private static long? Deadline(long? startedMs, JobRecord job, long? stepDeadline)
    {
        long? inProgress = job.Settings.InProgressTimeoutMinutes is { } minutes && startedMs is { } started ? started + (minutes * 60_000) : null;
        return (inProgress, stepDeadline) switch
        {
            ({ } a, { } b) => Math.Min(a, b),
            ({ } a, null) => a,
            (null, var b) => b,
        };
    }

    private static JobDeviceError? StepTimeoutError(long? minutes) =>
        minutes is < 1 or > MaxStepTimeoutMinutes
            ? new JobDeviceError("InvalidRequest", $"stepTimeoutInMinutes must be between 1 and {MaxStepTimeoutMinutes}, not {minutes}.")
            : null;

    private static JobDeviceError NoThing(string thing) => new("ResourceNotFound", $"Thing '{thing}' does not exist.");
}
