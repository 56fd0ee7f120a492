using System.Collections.Concurrent;

namespace Trellis.Jobs;

/// <summary>
/// The rollout: executions released at the job's rate, scheduled starts and ends, time-outs, and
/// things that join or leave a CONTINUOUS job's groups. Everything it acts on is read from the store
/// (release times, deadlines), so after a restart it carries on where it stood.
/// </summary>
public sealed partial class JobService
{
    /// <summary>Maintenance windows' cron expressions, parsed once (they were checked when the job was created).</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, AwsCron> Crons = new(StringComparer.Ordinal);

    /// <summary>Executions released per job per pass, so that device requests are never held long behind a large release.</summary>
    private const int ReleaseBatch = 500;

    private readonly ConcurrentQueue<(string Thing, bool Joined)> _membership = new();

    /// <summary>A thing joined a group: CONTINUOUS jobs on that group (or an ancestor) will reach it.</summary>
    public void ThingJoinedGroup(string thing)
    {
        _membership.Enqueue((thing, true));
        Wake();
    }

    /// <summary>A thing left a group, or was deleted: its QUEUED executions of jobs that no longer target it (any pending one, when deleted) become REMOVED.</summary>
    public void ThingLeftGroup(string thing)
    {
        _membership.Enqueue((thing, false));
        Wake();
    }

    /// <summary>Runs the rollout until <paramref name="cancellationToken"/> is canceled: each pass does what is due and sleeps until the next due time or a change.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            var delay = TimeSpan.FromSeconds(1);
            try
            {
                delay = TimeSpan.FromMilliseconds(Math.Clamp(RunDue() - NowMs, 0, 1000));
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogRolloutFailed(_logger, e);
            }

            if (delay > TimeSpan.Zero)
            {
                try
                {
                    await _work.WaitAsync(delay, cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    /// <summary>One pass: membership changes, time-outs, then each active job's schedule and release. Returns when the next pass is due (epoch ms).</summary>
    public long RunDue()
    {
        var now = NowMs;
        var due = now + 1000;
        while (_membership.TryDequeue(out var change))
        {
            ApplyMembership(change.Thing, change.Joined);
        }

        var timeouts = _store.DueTimeouts(now, ReleaseBatch);
        foreach (var execution in timeouts)
        {
            TimeOut(execution, now);
        }

        if (timeouts.Count == ReleaseBatch)
        {
            due = now;
        }
        else if (_store.NextTimeoutMs() is { } nextTimeout)
        {
            due = Math.Min(due, nextTimeout);
        }

        foreach (var job in _store.ActiveJobs())
        {
            due = Math.Min(due, Advance(job.JobId, now));
        }

        return due;
    }

    private void Wake()
    {
        if (_work.CurrentCount == 0)
        {
            try
            {
                _work.Release();
            }
            catch (SemaphoreFullException)
            {
                // Another caller woke the rollout at the same moment: once is enough.
            }
        }
    }

    /// <summary>Null while a window is open at <paramref name="now"/>; else when the next one opens (long.MaxValue: none within a year).</summary>
    private static long? ClosedUntil(IReadOnlyList<MaintenanceWindowSettings> windows, long now)
    {
        var at = DateTimeOffset.FromUnixTimeMilliseconds(now);
        var next = long.MaxValue;
        foreach (var window in windows)
        {
            var cron = Crons.GetOrAdd(window.StartTime, s => AwsCron.Parse(s).Value!);
            if (cron.OpenAt(at, TimeSpan.FromMinutes(window.DurationInMinutes)) is not null)
            {
                return null;
            }

            if (cron.Next(at, TimeSpan.FromDays(366)) is { } opens)
            {
                next = Math.Min(next, opens.ToUnixTimeMilliseconds());
            }
        }

        return next;
    }

    private void TimeOut(JobExecutionRecord due, long now)
    {
        var notes = new Notes();
        lock (_gate)
        {
            if (_store.GetExecution(due.JobId, due.Thing, due.ExecutionNumber) is not { IsPending: true, TimeoutAtMs: { } at } execution || at > now
                || _store.GetJob(due.JobId) is not { } job)
            {
                return;
            }

            var snapshot = Snapshot(execution.Thing);
            var timedOut = Finish(execution, ExecutionStatus.TimedOut, null);
            _store.Save(null, [timedOut]);
            AfterTerminal(job, timedOut, notes);
            NotifyChanges(execution.Thing, snapshot, notes, job);
        }

        Post(notes);
    }

    /// <summary>Moves one job on: its schedule, then as many executions as its rate allows. Returns when it is next due.</summary>
    private long Advance(string jobId, long now)
    {
        var notes = new Notes();
        long due;
        lock (_gate)
        {
            due = AdvanceLocked(jobId, now, notes);
        }

        Post(notes);
        return due;
    }

    private long AdvanceLocked(string jobId, long now, Notes notes)
    {
        if (_store.GetJob(jobId) is not { IsActive: true } job)
        {
            return long.MaxValue;
        }

        var scheduling = job.Settings.Scheduling;
        if (job.Status == JobStatus.Scheduled)
        {
            var start = scheduling?.StartTime?.ToUnixTimeMilliseconds() ?? now;
            if (start > now)
            {
                return start;
            }

            job = job with { Status = JobStatus.InProgress, UpdatedMs = now };
            _store.Save(job, []);
        }

        if (scheduling?.EndTime is { } end && end.ToUnixTimeMilliseconds() <= now)
        {
            switch (scheduling.EndBehavior)
            {
                case "CANCEL":
                    CancelLocked(job, "SCHEDULE_ENDED", "The job's scheduled end time passed.", force: false, notes);
                    return long.MaxValue;
                case "FORCE_CANCEL":
                    CancelLocked(job, "SCHEDULE_ENDED", "The job's scheduled end time passed.", force: true, notes);
                    return long.MaxValue;
                default:
                    // STOP_ROLLOUT: things not reached yet are not reached; what runs finishes.
                    if (_store.PendingTargets(jobId, int.MaxValue) is { Count: > 0 } unreached)
                    {
                        _store.Save(job, [], unreached);
                    }

                    CheckCompleted(job, notes);
                    return long.MaxValue;
            }
        }

        // Maintenance windows: outside every window no thing is reached; the rollout waits for the next one.
        if (scheduling?.MaintenanceWindows is { Count: > 0 } windows && ClosedUntil(windows, now) is { } opens)
        {
            return Math.Min(opens, scheduling.EndTime?.ToUnixTimeMilliseconds() ?? long.MaxValue);
        }

        // The exponential rate rises as soon as its criterion is met, even while the window is full.
        if (RaiseRate(job) is var raised && raised != job)
        {
            job = raised;
            _store.Save(job, []);
        }

        var limit = ReleaseBatch;
        var rate = CurrentRate(job);
        if (rate > 0)
        {
            var allowed = (int)Math.Floor(rate) - _store.ReachedSince(jobId, now - 60_000);
            if (allowed <= 0)
            {
                return now + Math.Max(100, (long)(60_000 / rate));
            }

            limit = Math.Min(limit, allowed);
        }

        var (batch, through) = _store.NextTargets(jobId, limit);
        if (batch.Count == 0)
        {
            CheckCompleted(job, notes);
            return scheduling?.EndTime?.ToUnixTimeMilliseconds() ?? long.MaxValue;
        }

        // One read of what the batch's things already have pending; what they have after is that plus
        // the new execution, which the store creates for the whole batch in one statement.
        var pending = _store.PendingExecutionsOfTargets(jobId, through);
        var queued = new JobExecutionRecord { JobId = jobId, Thing = string.Empty, Status = ExecutionStatus.Queued, QueuedMs = now, UpdatedMs = now };
        _store.Release(job, through, queued);
        foreach (var thing in batch)
        {
            var had = pending.GetValueOrDefault(thing) ?? [];
            Announce(thing, Snapshot(had), [.. had, queued with { Thing = thing }], notes, job);
        }

        return batch.Count == limit ? now : now + 1000;
    }

    /// <summary>Things a minute the job may reach now: the exponential rate where there is one (capped by the maximum), else the maximum; 0 for no limit.</summary>
    private static double CurrentRate(JobRecord job) => job.Settings.Rollout switch
    {
        null => 0,
        { BaseRatePerMinute: not null, MaximumPerMinute: { } max } => Math.Min(job.RatePerMinute, max),
        { BaseRatePerMinute: not null } => job.RatePerMinute,
        { MaximumPerMinute: { } max } => max,
        _ => 0,
    };

    /// <summary>The job with its exponential rate raised when its criterion (things notified or succeeded since the last raise) is met.</summary>
    private JobRecord RaiseRate(JobRecord job)
    {
        if (job.Settings.Rollout is not { BaseRatePerMinute: not null, IncrementFactor: { } factor } rollout)
        {
            return job;
        }

        var step = rollout.NotifiedThings ?? rollout.SucceededThings ?? int.MaxValue;
        var measure = rollout.NotifiedThings is not null
            ? _store.ReachedSince(job.JobId, 0)
            : _store.CountByStatus(job.JobId).GetValueOrDefault(ExecutionStatus.Succeeded);
        var rate = job.RatePerMinute;
        var mark = job.RateMark;
        while (measure - mark >= step)
        {
            rate = rollout.MaximumPerMinute is { } max ? Math.Min(max, rate * factor) : rate * factor;
            mark += step;
        }

        return mark == job.RateMark ? job : job with { RatePerMinute = rate, RateMark = mark };
    }

    private void ApplyMembership(string thing, bool joined)
    {
        var notes = new Notes();
        lock (_gate)
        {
            var exists = _targets.ThingExists(thing);
            var groups = exists ? _targets.GroupArnsOf(thing) : [];
            var thingArn = _targets.Arn("thing/" + thing);
            foreach (var job in _store.ActiveJobs().Where(j => j.TargetSelection == "CONTINUOUS" || !exists))
            {
                // A deleted thing is no one's target any more: its unreached place in any rollout goes too.
                var targeted = exists && job.Targets.Any(t => t == thingArn || groups.Contains(t));
                if (!exists)
                {
                    _store.Save(job, [], [thing]);
                }

                if (joined && targeted)
                {
                    _store.AddPendingTarget(job.JobId, thing);
                }
                else if (!joined && !targeted && _store.GetExecution(job.JobId, thing) is { } queued && (queued.Status == ExecutionStatus.Queued || (!exists && queued.IsPending)))
                {
                    var snapshot = Snapshot(thing);
                    var removed = Finish(queued, ExecutionStatus.Removed, null);
                    _store.Save(null, [removed]);
                    notes.Event($"$aws/events/jobExecution/{job.JobId}/removed", ExecutionEvent(removed, "removed"));
                    NotifyChanges(thing, snapshot, notes, job);
                }
            }
        }

        Post(notes);
    }

    [Microsoft.Extensions.Logging.LoggerMessage(Level = Microsoft.Extensions.Logging.LogLevel.Error, Message = "A jobs rollout pass failed; it is tried again within a second")]
    private static partial void LogRolloutFailed(Microsoft.Extensions.Logging.ILogger logger, Exception exception);
}
