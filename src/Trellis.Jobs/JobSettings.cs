namespace Trellis.Jobs;

/// <summary>How a job, or a template, runs: rollout rate, abort and retry rules, time-outs, schedule.</summary>
public sealed record JobSettings
{
    public RolloutSettings? Rollout { get; init; }

    public IReadOnlyList<AbortRule> Abort { get; init; } = [];

    /// <summary>Minutes an execution may stay IN_PROGRESS before the service sets it TIMED_OUT.</summary>
    public long? InProgressTimeoutMinutes { get; init; }

    public IReadOnlyList<RetryRule> Retry { get; init; } = [];

    public SchedulingSettings? Scheduling { get; init; }

    public PresignedUrlSettings? PresignedUrl { get; init; }

    /// <summary>Values for the document's <c>${aws:iot:parameter:NAME}</c> placeholders.</summary>
    public IReadOnlyDictionary<string, string>? DocumentParameters { get; init; }

    public string? TemplateArn { get; init; }
}

/// <summary>
/// The rollout rate: at most <see cref="MaximumPerMinute"/> things notified a minute; with an
/// exponential rate, <see cref="BaseRatePerMinute"/> at first, multiplied by
/// <see cref="IncrementFactor"/> each time <see cref="NotifiedThings"/> more things were notified
/// (or <see cref="SucceededThings"/> more succeeded) since the last increase.
/// </summary>
public sealed record RolloutSettings(int? MaximumPerMinute, int? BaseRatePerMinute, double? IncrementFactor, int? NotifiedThings, int? SucceededThings);

/// <summary>
/// Cancels the job when, among at least <see cref="MinNumberOfExecutedThings"/> executions that
/// reached a terminal state, the share that ended as <see cref="FailureType"/> (FAILED, REJECTED,
/// TIMED_OUT, or ALL of them) reaches <see cref="ThresholdPercentage"/>.
/// </summary>
public sealed record AbortRule(string FailureType, string Action, double ThresholdPercentage, int MinNumberOfExecutedThings);

/// <summary>Retries an execution that ended as <see cref="FailureType"/> (FAILED, TIMED_OUT or ALL) up to <see cref="NumberOfRetries"/> times.</summary>
public sealed record RetryRule(string FailureType, int NumberOfRetries);

/// <summary>
/// When the rollout starts and ends (UTC, AWS's <c>yyyy-MM-dd'T'HH:mm</c>), what ending does, and
/// the maintenance windows outside which no thing is reached (executions already out carry on).
/// </summary>
public sealed record SchedulingSettings(DateTimeOffset? StartTime, DateTimeOffset? EndTime, string? EndBehavior, IReadOnlyList<MaintenanceWindowSettings>? MaintenanceWindows = null);

/// <summary>A recurring window: it opens when the cron expression <paramref name="StartTime"/> (AWS's <c>cron(…)</c>, UTC) fires and lasts <paramref name="DurationInMinutes"/>.</summary>
public sealed record MaintenanceWindowSettings(string StartTime, int DurationInMinutes);

public sealed record PresignedUrlSettings(string? RoleArn, long? ExpiresInSec);
