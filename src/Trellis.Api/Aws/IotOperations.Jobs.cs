using System.Globalization;
using Trellis.Jobs;

namespace Trellis.Api.Aws.Iot;

/// <summary>Jobs, job executions and job templates: the control plane of AWS IoT Jobs.</summary>
public sealed partial class IotOperations
{
    public Task<CreateJobResponse> CreateJobAsync(CreateJobRequest request, CancellationToken cancellationToken)
    {
        var job = Ok(jobs.CreateJob(new NewJob
        {
            JobId = request.JobId,
            Targets = request.Targets,
            Document = request.Document,
            DocumentSource = request.DocumentSource,
            Description = request.Description,
            TargetSelection = request.TargetSelection,
            TemplateArn = request.JobTemplateArn,
            Settings = Settings(request.JobExecutionsRolloutConfig, request.AbortConfig, request.TimeoutConfig, request.JobExecutionsRetryConfig, request.PresignedUrlConfig) with
            {
                Scheduling = Scheduling(request.SchedulingConfig),
                DocumentParameters = request.DocumentParameters?.Where(p => p.Value is not null).ToDictionary(p => p.Key, p => p.Value!, StringComparer.Ordinal),
            },
        }));
        return DoneAsync(new CreateJobResponse { JobArn = job.Arn, JobId = job.JobId, Description = job.Description });
    }

    public Task<DescribeJobResponse> DescribeJobAsync(DescribeJobRequest request, CancellationToken cancellationToken)
    {
        var job = Ok(jobs.DescribeJob(request.JobId));
        var counts = jobs.Counts(job.JobId);
        int Count(string status) => counts.GetValueOrDefault(status);
        var settings = job.Settings;
        return DoneAsync(new DescribeJobResponse
        {
            Job = JobView<Job>(job) with
            {
                ForceCanceled = job.ForceCanceled,
                ReasonCode = job.ReasonCode,
                Comment = job.Comment,
                Targets = job.Targets,
                Description = job.Description,
                PresignedUrlConfig = settings.PresignedUrl is { } url ? new PresignedUrlConfig { RoleArn = url.RoleArn, ExpiresInSec = url.ExpiresInSec } : null,
                JobExecutionsRolloutConfig = settings.Rollout is { } rollout ? Rollout(rollout) : null,
                AbortConfig = settings.Abort.Count > 0 ? Abort(settings.Abort) : null,
                TimeoutConfig = settings.InProgressTimeoutMinutes is { } minutes ? new TimeoutConfig { InProgressTimeoutInMinutes = minutes } : null,
                JobExecutionsRetryConfig = settings.Retry.Count > 0 ? Retry(settings.Retry) : null,
                SchedulingConfig = settings.Scheduling is { } scheduling ? new SchedulingConfig
                {
                    StartTime = scheduling.StartTime?.ToString("yyyy-MM-dd'T'HH:mm", CultureInfo.InvariantCulture),
                    EndTime = scheduling.EndTime?.ToString("yyyy-MM-dd'T'HH:mm", CultureInfo.InvariantCulture),
                    EndBehavior = scheduling.EndBehavior,
                    MaintenanceWindows = Windows(scheduling.MaintenanceWindows),
                } : null,
                DocumentParameters = settings.DocumentParameters?.ToDictionary(p => p.Key, p => (string?)p.Value, StringComparer.Ordinal),
                JobTemplateArn = settings.TemplateArn,
                JobProcessDetails = new JobProcessDetails
                {
                    ProcessingTargets = job.IsActive ? job.Targets : [],
                    NumberOfQueuedThings = Count(ExecutionStatus.Queued),
                    NumberOfInProgressThings = Count(ExecutionStatus.InProgress),
                    NumberOfSucceededThings = Count(ExecutionStatus.Succeeded),
                    NumberOfFailedThings = Count(ExecutionStatus.Failed),
                    NumberOfRejectedThings = Count(ExecutionStatus.Rejected),
                    NumberOfCanceledThings = Count(ExecutionStatus.Canceled),
                    NumberOfRemovedThings = Count(ExecutionStatus.Removed),
                    NumberOfTimedOutThings = Count(ExecutionStatus.TimedOut),
                },
            },
        });
    }

    public Task<ListJobsResponse> ListJobsAsync(ListJobsRequest request, CancellationToken cancellationToken)
    {
        var (page, next) = Ok(jobs.ListJobs(request.Status, request.TargetSelection, request.ThingGroupName, request.NextToken, request.MaxResults));
        return DoneAsync(new ListJobsResponse
        {
            Jobs = [.. page.Select(JobView<JobSummary>)],
            NextToken = next,
        });
    }

    /// <summary>A job's members that Describe and List both answer.</summary>
    private static T JobView<T>(JobRecord job)
        where T : IJobView, new() => new()
        {
            JobArn = job.Arn,
            JobId = job.JobId,
            TargetSelection = job.TargetSelection,
            Status = job.Status,
            CreatedAt = Time(job.CreatedMs),
            LastUpdatedAt = Time(job.UpdatedMs),
            CompletedAt = job.CompletedMs is { } completed ? Time(completed) : null,
            IsConcurrent = false,
        };

    public Task<AwsEmpty> UpdateJobAsync(UpdateJobRequest request, CancellationToken cancellationToken) =>
        EmptyAsync(jobs.UpdateJob(request.JobId, request.Description,
            Settings(request.JobExecutionsRolloutConfig, request.AbortConfig, request.TimeoutConfig, request.JobExecutionsRetryConfig, request.PresignedUrlConfig)));

    public Task<CancelJobResponse> CancelJobAsync(CancelJobRequest request, CancellationToken cancellationToken)
    {
        var job = Ok(jobs.CancelJob(request.JobId, request.ReasonCode, request.Comment, request.Force ?? false));
        return DoneAsync(new CancelJobResponse { JobArn = job.Arn, JobId = job.JobId, Description = job.Description });
    }

    public Task<AwsEmpty> DeleteJobAsync(DeleteJobRequest request, CancellationToken cancellationToken) =>
        EmptyAsync(jobs.DeleteJob(request.JobId, request.Force ?? false));

    public Task<GetJobDocumentResponse> GetJobDocumentAsync(GetJobDocumentRequest request, CancellationToken cancellationToken) =>
        DoneAsync(new GetJobDocumentResponse { Document = Ok(jobs.GetJobDocument(request.JobId, request.BeforeSubstitution ?? false)) });

    public Task<ListJobExecutionsForJobResponse> ListJobExecutionsForJobAsync(ListJobExecutionsForJobRequest request, CancellationToken cancellationToken)
    {
        var (page, next) = jobs.ListExecutionsOfJob(request.JobId, request.Status, request.NextToken, request.MaxResults, out var error);
        Ok(error);
        return DoneAsync(new ListJobExecutionsForJobResponse
        {
            ExecutionSummaries = [.. page.Select(e => new JobExecutionSummaryForJob { ThingArn = registry.Options.Arn("thing/" + e.Thing), JobExecutionSummary = ExecutionSummary(e) })],
            NextToken = next,
        });
    }

    public Task<ListJobExecutionsForThingResponse> ListJobExecutionsForThingAsync(ListJobExecutionsForThingRequest request, CancellationToken cancellationToken)
    {
        if (!registry.ThingExists(request.ThingName))
        {
            throw new AwsErrorException(new TrellisError.NotFound($"Thing '{request.ThingName}' does not exist."));
        }

        var (page, next) = jobs.ListExecutionsOfThing(request.ThingName, request.Status, request.JobId, request.NextToken, request.MaxResults);
        return DoneAsync(new ListJobExecutionsForThingResponse
        {
            ExecutionSummaries = [.. page.Select(e => new JobExecutionSummaryForThing { JobId = e.JobId, JobExecutionSummary = ExecutionSummary(e) })],
            NextToken = next,
        });
    }

    public Task<DescribeJobExecutionResponse> DescribeJobExecutionAsync(DescribeJobExecutionRequest request, CancellationToken cancellationToken)
    {
        var e = Ok(jobs.DescribeJobExecution(request.JobId, request.ThingName, request.ExecutionNumber));
        return DoneAsync(new DescribeJobExecutionResponse
        {
            Execution = new JobExecution
            {
                JobId = e.JobId,
                Status = e.Status,
                ForceCanceled = e.ForceCanceled,
                StatusDetails = new JobExecutionStatusDetails { DetailsMap = e.StatusDetails.ToDictionary(d => d.Key, d => (string?)d.Value, StringComparer.Ordinal) },
                ThingArn = registry.Options.Arn("thing/" + e.Thing),
                QueuedAt = Time(e.QueuedMs),
                StartedAt = e.StartedMs is { } started ? Time(started) : null,
                LastUpdatedAt = Time(e.UpdatedMs),
                ExecutionNumber = e.ExecutionNumber,
                VersionNumber = e.Version,
                ApproximateSecondsBeforeTimedOut = jobs.SecondsBeforeTimeout(e),
            },
        });
    }

    public Task<AwsEmpty> CancelJobExecutionAsync(CancelJobExecutionRequest request, CancellationToken cancellationToken) =>
        EmptyAsync(jobs.CancelJobExecution(request.JobId, request.ThingName, request.Force ?? false, request.ExpectedVersion,
            request.StatusDetails?.Where(d => d.Value is not null).ToDictionary(d => d.Key, d => d.Value!, StringComparer.Ordinal)));

    public Task<AwsEmpty> DeleteJobExecutionAsync(DeleteJobExecutionRequest request, CancellationToken cancellationToken) =>
        EmptyAsync(jobs.DeleteJobExecution(request.JobId, request.ThingName, request.ExecutionNumber.GetValueOrDefault(), request.Force ?? false));

    public Task<CreateJobTemplateResponse> CreateJobTemplateAsync(CreateJobTemplateRequest request, CancellationToken cancellationToken)
    {
        var settings = Settings(request.JobExecutionsRolloutConfig, request.AbortConfig, request.TimeoutConfig, request.JobExecutionsRetryConfig, request.PresignedUrlConfig);
        if (request.MaintenanceWindows is { Count: > 0 } windows)
        {
            settings = settings with { Scheduling = new SchedulingSettings(null, null, null, Windows(windows)) };
        }

        var template = Ok(jobs.CreateTemplate(request.JobTemplateId, request.Description, request.Document, request.DocumentSource, request.JobArn, settings));
        return DoneAsync(new CreateJobTemplateResponse { JobTemplateArn = template.Arn, JobTemplateId = template.TemplateId });
    }

    public Task<DescribeJobTemplateResponse> DescribeJobTemplateAsync(DescribeJobTemplateRequest request, CancellationToken cancellationToken)
    {
        var template = Ok(jobs.DescribeTemplate(request.JobTemplateId));
        var settings = template.Settings;
        return DoneAsync(new DescribeJobTemplateResponse
        {
            JobTemplateArn = template.Arn,
            JobTemplateId = template.TemplateId,
            Description = template.Description,
            Document = template.Document,
            CreatedAt = Time(template.CreatedMs),
            PresignedUrlConfig = settings.PresignedUrl is { } url ? new PresignedUrlConfig { RoleArn = url.RoleArn, ExpiresInSec = url.ExpiresInSec } : null,
            JobExecutionsRolloutConfig = settings.Rollout is { } rollout ? Rollout(rollout) : null,
            AbortConfig = settings.Abort.Count > 0 ? Abort(settings.Abort) : null,
            TimeoutConfig = settings.InProgressTimeoutMinutes is { } minutes ? new TimeoutConfig { InProgressTimeoutInMinutes = minutes } : null,
            JobExecutionsRetryConfig = settings.Retry.Count > 0 ? Retry(settings.Retry) : null,
            MaintenanceWindows = Windows(settings.Scheduling?.MaintenanceWindows),
        });
    }

    public Task<ListJobTemplatesResponse> ListJobTemplatesAsync(ListJobTemplatesRequest request, CancellationToken cancellationToken)
    {
        var (page, next) = jobs.ListTemplates(request.NextToken, request.MaxResults);
        return DoneAsync(new ListJobTemplatesResponse
        {
            JobTemplates = [.. page.Select(t => new JobTemplateSummary { JobTemplateArn = t.Arn, JobTemplateId = t.TemplateId, Description = t.Description, CreatedAt = Time(t.CreatedMs) })],
            NextToken = next,
        });
    }

    public Task<AwsEmpty> DeleteJobTemplateAsync(DeleteJobTemplateRequest request, CancellationToken cancellationToken) =>
        EmptyAsync(jobs.DeleteTemplate(request.JobTemplateId));

    private static JobExecutionSummary ExecutionSummary(JobExecutionRecord e) => new()
    {
        Status = e.Status,
        QueuedAt = Time(e.QueuedMs),
        StartedAt = e.StartedMs is { } started ? Time(started) : null,
        LastUpdatedAt = Time(e.UpdatedMs),
        ExecutionNumber = e.ExecutionNumber,
        RetryAttempt = e.RetryAttempt,
    };

    /// <summary>The model's rollout, abort, time-out, retry and pre-signed URL settings as the jobs service keeps them.</summary>
    private static JobSettings Settings(JobExecutionsRolloutConfig? rollout, AbortConfig? abort, TimeoutConfig? timeout, JobExecutionsRetryConfig? retry, PresignedUrlConfig? url) => new()
    {
        Rollout = rollout is null ? null : new RolloutSettings(
            rollout.MaximumPerMinute,
            rollout.ExponentialRate?.BaseRatePerMinute,
            rollout.ExponentialRate?.IncrementFactor,
            rollout.ExponentialRate?.RateIncreaseCriteria.NumberOfNotifiedThings,
            rollout.ExponentialRate?.RateIncreaseCriteria.NumberOfSucceededThings),
        Abort = abort is null ? [] : [.. abort.CriteriaList.Select(c => new AbortRule(c.FailureType, c.Action, c.ThresholdPercentage ?? 0, c.MinNumberOfExecutedThings ?? 1))],
        InProgressTimeoutMinutes = timeout?.InProgressTimeoutInMinutes,
        Retry = retry is null ? [] : [.. retry.CriteriaList.Select(c => new RetryRule(c.FailureType, c.NumberOfRetries ?? 0))],
        PresignedUrl = url is null ? null : new PresignedUrlSettings(url.RoleArn, url.ExpiresInSec),
    };

    private static SchedulingSettings? Scheduling(SchedulingConfig? config) => config is null ? null : new SchedulingSettings(
        When(config.StartTime, "startTime"), When(config.EndTime, "endTime"), config.EndBehavior, config.MaintenanceWindows is { Count: > 0 } windows ? Windows(windows) : null);

    private static List<MaintenanceWindowSettings> Windows(IReadOnlyList<MaintenanceWindow> windows) =>
        [.. windows.Select(w => new MaintenanceWindowSettings(w.StartTime, w.DurationInMinutes ?? 0))];

    private static List<MaintenanceWindow>? Windows(IReadOnlyList<MaintenanceWindowSettings>? windows) =>
        windows is null ? null : [.. windows.Select(w => new MaintenanceWindow { StartTime = w.StartTime, DurationInMinutes = w.DurationInMinutes })];

    /// <summary>AWS's schedule times: <c>yyyy-MM-dd'T'HH:mm</c> in UTC (seconds and an offset are accepted too).</summary>
    private static DateTimeOffset? When(string? value, string member) =>
        value is null ? null
        : DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var when) ? when
        : throw new AwsErrorException(new TrellisError.InvalidRequest($"schedulingConfig.{member} '{value}' is not a time as yyyy-MM-dd'T'HH:mm (UTC)."));

    private static JobExecutionsRolloutConfig Rollout(RolloutSettings r) => new()
    {
        MaximumPerMinute = r.MaximumPerMinute,
        ExponentialRate = r.BaseRatePerMinute is { } baseRate ? new ExponentialRolloutRate
        {
            BaseRatePerMinute = baseRate,
            IncrementFactor = r.IncrementFactor,
            RateIncreaseCriteria = new RateIncreaseCriteria { NumberOfNotifiedThings = r.NotifiedThings, NumberOfSucceededThings = r.SucceededThings },
        } : null,
    };

    private static AbortConfig Abort(IReadOnlyList<AbortRule> rules) => new()
    {
        CriteriaList = [.. rules.Select(r => new AbortCriteria { FailureType = r.FailureType, Action = r.Action, ThresholdPercentage = r.ThresholdPercentage, MinNumberOfExecutedThings = r.MinNumberOfExecutedThings })],
    };

    private static JobExecutionsRetryConfig Retry(IReadOnlyList<RetryRule> rules) => new()
    {
        CriteriaList = [.. rules.Select(r => new RetryCriteria { FailureType = r.FailureType, NumberOfRetries = r.NumberOfRetries })],
    };
}
