using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Trellis.Core.Errors;

namespace Trellis.Jobs;

/// <summary>
/// AWS IoT Jobs: the control plane (jobs, templates, executions), the device side (get, start-next,
/// describe, update) and the rollout that releases executions at the job's rate, times them out,
/// retries them and aborts the job when too many fail. Every change is written to the store before
/// it is answered or announced, so a restart resumes exactly where it stood. Changes are made one at
/// a time under one lock; notifications go out after it is released.
/// </summary>
public sealed partial class JobService : IDisposable
{
    /// <summary>AWS IoT's limit on a job document, in bytes.</summary>
    public const int MaxDocumentBytes = 32 * 1024;

    private static readonly Regex Parameter = new(@"\$\{aws:iot:parameter:([A-Za-z0-9_-]+)\}", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));

    private readonly IJobStore _store;
    private readonly IJobTargets _targets;
    private readonly IJobPublisher _publisher;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly IJobDocumentLinks? _links;
    private readonly Lock _gate = new();
    private readonly SemaphoreSlim _work = new(0, 1);
    private readonly System.Collections.Concurrent.BlockingCollection<Notes> _outgoing = [];
    private readonly Thread _sender;

    public JobService(IJobStore store, IJobTargets targets, IJobPublisher publisher, TimeProvider time, ILogger<JobService> logger, IJobDocumentLinks? links = null)
    {
        _links = links;
        _store = store;
        _targets = targets;
        _publisher = publisher;
        _time = time;
        _logger = logger;
        _sender = new Thread(SendLoop) { IsBackground = true, Name = "jobs-sender" };
        _sender.Start();
    }

    private long NowMs => _time.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>A job's document as a device gets it: download links filled in, valid for the job's presignedUrlConfig.expiresInSec.</summary>
    private string DeviceDocument(JobRecord job) => _links?.Resolve(job.Document, job.Settings.PresignedUrl?.ExpiresInSec) ?? job.Document;

    public void Dispose()
    {
        _outgoing.CompleteAdding();
        _sender.Join(TimeSpan.FromSeconds(5));
        _work.Dispose();
        _outgoing.Dispose();
    }

    /// <summary>Hands what a change announces to the sender thread, which publishes everything in the order it was posted.</summary>
    private void Post(Notes notes)
    {
        if (!notes.IsEmpty && !_outgoing.IsAddingCompleted)
        {
            _outgoing.Add(notes);
        }
    }

    private void SendLoop()
    {
        foreach (var notes in _outgoing.GetConsumingEnumerable())
        {
            try
            {
                notes.Send(_publisher);
            }
            catch (Exception e)
            {
                LogSendFailed(_logger, e);
            }
        }
    }

    public Result<JobRecord> CreateJob(NewJob request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var settings = request.Settings;
        var document = request.Document;
        if (request.TemplateArn is { } templateArn)
        {
            var templateId = templateArn[(templateArn.LastIndexOf('/') + 1)..];
            if (!templateArn.Contains(":jobtemplate/", StringComparison.Ordinal) || _store.GetTemplate(templateId) is not { } template)
            {
                return new TrellisError.NotFound($"Job template '{templateArn}' does not exist.");
            }

            document ??= template.Document;
            settings = Merge(settings, template.Settings) with { TemplateArn = template.Arn };
        }

        if (request.DocumentSource is { } source)
        {
            if (document is not null && request.TemplateArn is null)
            {
                return new TrellisError.InvalidRequest("Give the job document either inline ('document') or as 'documentSource', not both.");
            }

            var read = ReadSource(source);
            if (!read.IsSuccess)
            {
                return read.Error!;
            }

            document = read.Value;
        }

        if (document is null)
        {
            return new TrellisError.InvalidRequest("A job needs a document: 'document' inline or a 'jobTemplateArn'.");
        }

        if ((ValidateDocument(document) ?? ValidateSettings(settings)) is { } invalid)
        {
            return invalid;
        }

        var substituted = Substitute(document, settings.DocumentParameters, out var missing);
        if (missing is not null)
        {
            return new TrellisError.InvalidRequest($"The document uses ${{aws:iot:parameter:{missing}}} but documentParameters gives no value for '{missing}'.");
        }

        if (_links?.MissingReference(substituted) is { } firmware)
        {
            return new TrellisError.NotFound($"The document links firmware '{firmware}', which does not exist: upload it first (PUT /api/firmware/{firmware} or trellis firmware upload).");
        }

        var selection = request.TargetSelection ?? "SNAPSHOT";
        var things = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var arn in request.Targets.Distinct(StringComparer.Ordinal))
        {
            var resolved = ResolveTarget(arn);
            if (!resolved.IsSuccess)
            {
                return resolved.Error!;
            }

            things.AddRange(resolved.Value!.Where(seen.Add));
        }

        var now = NowMs;
        var scheduled = settings.Scheduling?.StartTime is { } start && start.ToUnixTimeMilliseconds() > now;
        var job = new JobRecord
        {
            JobId = request.JobId,
            Arn = _targets.Arn("job/" + request.JobId),
            Status = scheduled ? JobStatus.Scheduled : JobStatus.InProgress,
            TargetSelection = selection,
            Targets = [.. request.Targets.Distinct(StringComparer.Ordinal)],
            Document = substituted,
            SourceDocument = document,
            Description = request.Description,
            Settings = settings,
            CreatedMs = now,
            UpdatedMs = now,
            RatePerMinute = settings.Rollout?.BaseRatePerMinute ?? 0,
        };
        var notes = new Notes();
        lock (_gate)
        {
            if (!_store.InsertJob(job, things))
            {
                return new TrellisError.AlreadyExists($"A job with id '{request.JobId}' already exists.", request.JobId, job.Arn);
            }

            // The first part of the rollout goes out before CreateJob answers: a device that asks
            // right after sees its job; the rest follows from the rollout loop.
            AdvanceLocked(job.JobId, now, notes);
        }

        Post(notes);
        LogJobCreated(_logger, job.JobId, things.Count, selection);
        Wake();
        return job;
    }

    public Result<JobRecord> DescribeJob(string jobId) =>
        _store.GetJob(jobId) is { } job ? job : new TrellisError.NotFound($"Job '{jobId}' does not exist.");

    /// <summary>How many of the job's things stand in each execution status; things not reached yet are not counted.</summary>
    public IReadOnlyDictionary<string, int> Counts(string jobId) => _store.CountByStatus(jobId);

    public Result<(IReadOnlyList<JobRecord> Jobs, string? NextToken)> ListJobs(string? status, string? targetSelection, string? thingGroupName, string? nextToken, int? maxResults)
    {
        var size = Math.Clamp(maxResults ?? 100, 1, 250);
        var target = thingGroupName is null ? null : _targets.Arn("thinggroup/" + thingGroupName);
        var jobs = _store.ListJobs(status, targetSelection, target, Decode(nextToken), size + 1);
        return Paged(jobs, size, j => j.JobId);
    }

    public Result<string> GetJobDocument(string jobId, bool beforeSubstitution) =>
        _store.GetJob(jobId) is { } job ? (beforeSubstitution ? job.SourceDocument : job.Document) : new TrellisError.NotFound($"Job '{jobId}' does not exist.");

    /// <summary>Changes a job's description and settings; the rollout goes on at the new rate from now.</summary>
    public TrellisError? UpdateJob(string jobId, string? description, JobSettings changes)
    {
        ArgumentNullException.ThrowIfNull(changes);
        lock (_gate)
        {
            if (_store.GetJob(jobId) is not { } job)
            {
                return new TrellisError.NotFound($"Job '{jobId}' does not exist.");
            }

            var settings = Merge(changes, job.Settings) with { Scheduling = job.Settings.Scheduling, DocumentParameters = job.Settings.DocumentParameters, TemplateArn = job.Settings.TemplateArn };
            if (ValidateSettings(settings) is { } invalid)
            {
                return invalid;
            }

            var rateChanged = changes.Rollout is not null && changes.Rollout != job.Settings.Rollout;
            _store.Save(job with
            {
                Description = description ?? job.Description,
                Settings = settings,
                UpdatedMs = NowMs,
                RatePerMinute = rateChanged ? settings.Rollout?.BaseRatePerMinute ?? 0 : job.RatePerMinute,
            }, []);
        }

        Wake();
        return null;
    }

    /// <summary>
    /// Cancels a job: its unreached things are dropped and its QUEUED executions become CANCELED;
    /// IN_PROGRESS ones run on unless <paramref name="force"/>, which cancels them too.
    /// </summary>
    public Result<JobRecord> CancelJob(string jobId, string? reasonCode, string? comment, bool force)
    {
        var notes = new Notes();
        JobRecord canceled;
        lock (_gate)
        {
            if (_store.GetJob(jobId) is not { } job)
            {
                return new TrellisError.NotFound($"Job '{jobId}' does not exist.");
            }

            if (job.Status == JobStatus.Completed)
            {
                return new TrellisError.InvalidRequest($"Job '{jobId}' is COMPLETED and cannot be canceled.");
            }

            canceled = CancelLocked(job, reasonCode, comment, force, notes);
        }

        Post(notes);
        return canceled;
    }

    /// <summary>Deletes a job and its executions; one still IN_PROGRESS (or with executions IN_PROGRESS) needs <paramref name="force"/>.</summary>
    public TrellisError? DeleteJob(string jobId, bool force)
    {
        var notes = new Notes();
        lock (_gate)
        {
            if (_store.GetJob(jobId) is not { } job)
            {
                return new TrellisError.NotFound($"Job '{jobId}' does not exist.");
            }

            var pending = _store.PendingExecutionsOfJob(jobId);
            if (!force && (job.IsActive || pending.Any(e => e.Status == ExecutionStatus.InProgress)))
            {
                return new TrellisError.InvalidStateTransition(
                    $"Job '{jobId}' is {job.Status}{(pending.Any(e => e.Status == ExecutionStatus.InProgress) ? " with executions IN_PROGRESS" : string.Empty)}: cancel it first, or delete it with force=true.");
            }

            var before = pending.Select(e => (e.Thing, Snapshot(e.Thing))).ToList();
            _store.DeleteJob(jobId);
            foreach (var (thing, snapshot) in before)
            {
                NotifyChanges(thing, snapshot, notes);
            }

            notes.Event($"$aws/events/job/{jobId}/deleted", JobEvent(job, "deleted"));
        }

        Post(notes);
        return null;
    }

    public Result<JobExecutionRecord> DescribeJobExecution(string jobId, string thing, long? executionNumber) =>
        _store.GetExecution(jobId, thing, executionNumber) is { } execution
            ? execution
            : new TrellisError.NotFound($"No execution of job '{jobId}' on thing '{thing}'{(executionNumber is { } n ? $" with number {n}" : string.Empty)}.");

    public (IReadOnlyList<JobExecutionRecord> Executions, string? NextToken) ListExecutionsOfJob(string jobId, string? status, string? nextToken, int? maxResults, out TrellisError? error)
    {
        error = _store.GetJob(jobId) is null ? new TrellisError.NotFound($"Job '{jobId}' does not exist.") : null;
        var size = Math.Clamp(maxResults ?? 100, 1, 250);
        var page = Paged(_store.ExecutionsOfJob(jobId, status, Decode(nextToken), size + 1), size, e => e.Thing);
        return (page.Value.Items, page.Value.NextToken);
    }

    public (IReadOnlyList<JobExecutionRecord> Executions, string? NextToken) ListExecutionsOfThing(string thing, string? status, string? jobId, string? nextToken, int? maxResults)
    {
        var size = Math.Clamp(maxResults ?? 100, 1, 250);
        var executions = jobId is null
            ? _store.ExecutionsOfThing(thing, status, Decode(nextToken), size + 1)
            : [.. new[] { _store.GetExecution(jobId, thing) }.OfType<JobExecutionRecord>().Where(e => status is null || e.Status == status)];
        var page = Paged(executions, size, e => e.JobId);
        return (page.Value.Items, page.Value.NextToken);
    }

    /// <summary>Cancels one execution: a QUEUED one, or an IN_PROGRESS one with <paramref name="force"/>.</summary>
    public TrellisError? CancelJobExecution(string jobId, string thing, bool force, long? expectedVersion, IReadOnlyDictionary<string, string>? statusDetails)
    {
        var notes = new Notes();
        lock (_gate)
        {
            if (_store.GetJob(jobId) is not { } job || _store.GetExecution(jobId, thing) is not { } execution)
            {
                return new TrellisError.NotFound($"No execution of job '{jobId}' on thing '{thing}'.");
            }

            if (!execution.IsPending)
            {
                return new TrellisError.InvalidStateTransition($"The execution of job '{jobId}' on '{thing}' is {execution.Status}, a terminal state.");
            }

            if (execution.Status == ExecutionStatus.InProgress && !force)
            {
                return new TrellisError.InvalidStateTransition($"The execution of job '{jobId}' on '{thing}' is IN_PROGRESS: cancel it with force=true.");
            }

            if (expectedVersion is { } expected && expected != execution.Version)
            {
                return new TrellisError.VersionConflict($"The execution of job '{jobId}' on '{thing}' is at version {execution.Version}, not {expected}.");
            }

            var snapshot = Snapshot(thing);
            var canceled = Finish(execution, ExecutionStatus.Canceled, statusDetails, force && execution.Status == ExecutionStatus.InProgress);
            _store.Save(null, [canceled]);
            AfterTerminal(job, canceled, notes);
            NotifyChanges(thing, snapshot, notes);
        }

        Post(notes);
        return null;
    }

    /// <summary>Deletes one execution; one that is not in a terminal state needs <paramref name="force"/>.</summary>
    public TrellisError? DeleteJobExecution(string jobId, string thing, long executionNumber, bool force)
    {
        var notes = new Notes();
        lock (_gate)
        {
            if (_store.GetExecution(jobId, thing, executionNumber) is not { } execution)
            {
                return new TrellisError.NotFound($"No execution {executionNumber} of job '{jobId}' on thing '{thing}'.");
            }

            if (execution.IsPending && !force)
            {
                return new TrellisError.InvalidStateTransition($"The execution is {execution.Status}: only a terminal execution can be deleted without force=true.");
            }

            var snapshot = Snapshot(thing);
            _store.DeleteExecution(jobId, thing, executionNumber);
            NotifyChanges(thing, snapshot, notes);
            notes.Event($"$aws/events/jobExecution/{jobId}/deleted", ExecutionEvent(execution, "deleted"));
        }

        Post(notes);
        Wake();
        return null;
    }

    /// <summary>A job's document with its parameters in place; <paramref name="missing"/> names one that has no value.</summary>
    private static string Substitute(string document, IReadOnlyDictionary<string, string>? parameters, out string? missing)
    {
        string? absent = null;
        var result = Parameter.Replace(document, m =>
        {
            if (parameters is not null && parameters.TryGetValue(m.Groups[1].Value, out var value))
            {
                // The value lands inside a JSON string: escape it as one.
                return JsonEncodedText.Encode(value).ToString();
            }

            absent ??= m.Groups[1].Value;
            return m.Value;
        });
        missing = absent;
        return result;
    }

    /// <summary>A document given by <c>documentSource</c>: a file of the firmware store named by the URL's last segment.</summary>
    private Result<string> ReadSource(string source) => _links is null
        ? new TrellisError.InvalidRequest("documentSource needs the firmware store, which this server does not have: pass the document inline.")
        : _links.ReadDocument(source, MaxDocumentBytes);

    private static TrellisError? ValidateDocument(string document)
    {
        if (Encoding.UTF8.GetByteCount(document) > MaxDocumentBytes)
        {
            return new TrellisError.InvalidRequest($"The job document is {Encoding.UTF8.GetByteCount(document)} bytes; the limit is {MaxDocumentBytes}.");
        }

        try
        {
            using var parsed = JsonDocument.Parse(document);
            return parsed.RootElement.ValueKind == JsonValueKind.Object ? null : new TrellisError.InvalidRequest("The job document must be a JSON object.");
        }
        catch (JsonException e)
        {
            return new TrellisError.InvalidRequest($"The job document is not valid JSON: {e.Message}");
        }
    }

    private static TrellisError? ValidateSettings(JobSettings settings)
    {
        if (settings.Rollout is { BaseRatePerMinute: not null } rollout
            && (rollout.IncrementFactor is null || (rollout.NotifiedThings is null) == (rollout.SucceededThings is null)))
        {
            return new TrellisError.InvalidRequest("An exponentialRate needs incrementFactor and exactly one of rateIncreaseCriteria.numberOfNotifiedThings or numberOfSucceededThings.");
        }

        if (settings.Rollout is { MaximumPerMinute: { } max, BaseRatePerMinute: { } baseRate } && baseRate > max)
        {
            return new TrellisError.InvalidRequest($"exponentialRate.baseRatePerMinute ({baseRate}) is above maximumPerMinute ({max}).");
        }

        if (settings.Abort.FirstOrDefault(a => a.Action != "CANCEL") is { } action)
        {
            return new TrellisError.InvalidRequest($"Abort action '{action.Action}' is not supported: the one action is CANCEL.");
        }

        if (settings.Scheduling is { } scheduling)
        {
            if (scheduling.EndTime is { } end && scheduling.StartTime is { } start && end < start.AddMinutes(30))
            {
                return new TrellisError.InvalidRequest("schedulingConfig.endTime must be at least 30 minutes after startTime.");
            }

            if (scheduling.EndBehavior is { } behavior && behavior is not ("STOP_ROLLOUT" or "CANCEL" or "FORCE_CANCEL"))
            {
                return new TrellisError.InvalidRequest($"schedulingConfig.endBehavior '{behavior}' is not one of STOP_ROLLOUT, CANCEL, FORCE_CANCEL.");
            }

            foreach (var window in scheduling.MaintenanceWindows ?? [])
            {
                if (window.DurationInMinutes is < 30 or > 1430)
                {
                    return new TrellisError.InvalidRequest($"maintenanceWindows durationInMinutes {window.DurationInMinutes} is outside 30-1430.");
                }

                if (AwsCron.Parse(window.StartTime).Error is { } invalid)
                {
                    return invalid;
                }
            }
        }

        return null;
    }

    /// <summary>The request's settings over the template's: what the request names wins.</summary>
    private static JobSettings Merge(JobSettings request, JobSettings template) => new()
    {
        Rollout = request.Rollout ?? template.Rollout,
        Abort = request.Abort.Count > 0 ? request.Abort : template.Abort,
        InProgressTimeoutMinutes = request.InProgressTimeoutMinutes ?? template.InProgressTimeoutMinutes,
        Retry = request.Retry.Count > 0 ? request.Retry : template.Retry,
        Scheduling = request.Scheduling ?? template.Scheduling,
        PresignedUrl = request.PresignedUrl ?? template.PresignedUrl,
        DocumentParameters = request.DocumentParameters ?? template.DocumentParameters,
        TemplateArn = request.TemplateArn ?? template.TemplateArn,
    };

    /// <summary>The things a target ARN names: one thing, or every thing of a group and its descendants.</summary>
    private Result<IReadOnlyCollection<string>> ResolveTarget(string arn)
    {
        if (arn.StartsWith("arn:", StringComparison.Ordinal) && arn.IndexOf(":thing/", StringComparison.Ordinal) is var t and > 0)
        {
            var thing = arn[(t + ":thing/".Length)..];
            return _targets.ThingExists(thing) ? Found([thing]) : new TrellisError.NotFound($"Target '{arn}': thing '{thing}' does not exist.");
        }

        if (arn.StartsWith("arn:", StringComparison.Ordinal) && arn.IndexOf(":thinggroup/", StringComparison.Ordinal) is var g and > 0)
        {
            var group = arn[(g + ":thinggroup/".Length)..];
            return _targets.GroupExists(group) ? Found(_targets.ThingsInGroup(group)) : new TrellisError.NotFound($"Target '{arn}': thing group '{group}' does not exist.");
        }

        return new TrellisError.InvalidRequest($"Target '{arn}' is not a thing ARN (arn:aws:iot:REGION:ACCOUNT:thing/NAME) or a thing-group ARN (…:thinggroup/NAME).");
    }

    private static Result<IReadOnlyCollection<string>> Found(IReadOnlyCollection<string> things) => Success(things);

    /// <summary>A value as a result where C# allows no implicit conversion (an interface type).</summary>
    private static Result<T> Success<T>(T value) => value;

    private static Result<(IReadOnlyList<T> Items, string? NextToken)> Paged<T>(IReadOnlyList<T> items, int size, Func<T, string> key) =>
        items.Count > size
            ? ((IReadOnlyList<T>)[.. items.Take(size)], Encode(key(items[size - 1])))
            : (items, (string?)null);

    private static string Encode(string key) => Convert.ToBase64String(Encoding.UTF8.GetBytes(key));

    private static string? Decode(string? token)
    {
        if (token is null)
        {
            return null;
        }

        try
        {
            return Encoding.UTF8.GetString(Convert.FromBase64String(token));
        }
        catch (FormatException)
        {
            return "\uffff"; // an unreadable token: an empty page, not an error
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Publishing a job notification or event failed; the next ones are still sent")]
    private static partial void LogSendFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {JobId} created for {Things} things ({Selection})")]
    private static partial void LogJobCreated(ILogger logger, string jobId, int things, string selection);
}
