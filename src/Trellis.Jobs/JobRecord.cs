namespace Trellis.Jobs;

/// <summary>A job as stored. <see cref="Document"/> has its parameters substituted; <see cref="SourceDocument"/> is as given.</summary>
public sealed record JobRecord
{
    public required string JobId { get; init; }

    public required string Arn { get; init; }

    public required string Status { get; init; }

    /// <summary>SNAPSHOT or CONTINUOUS.</summary>
    public required string TargetSelection { get; init; }

    /// <summary>Thing and thing-group ARNs.</summary>
    public required IReadOnlyList<string> Targets { get; init; }

    public required string Document { get; init; }

    public required string SourceDocument { get; init; }

    public string? Description { get; init; }

    public JobSettings Settings { get; init; } = new();

    public string? ReasonCode { get; init; }

    public string? Comment { get; init; }

    public bool ForceCanceled { get; init; }

    public long CreatedMs { get; init; }

    public long UpdatedMs { get; init; }

    public long? CompletedMs { get; init; }

    /// <summary>The exponential rollout's current rate (things a minute); 0 when the job has no exponential rate.</summary>
    public double RatePerMinute { get; init; }

    /// <summary>The notified (or succeeded) count when the rate last increased.</summary>
    public long RateMark { get; init; }

    public bool IsActive => Status is JobStatus.InProgress or JobStatus.Scheduled;
}

/// <summary>One execution of a job on one thing. A retry is a new record with the next <see cref="ExecutionNumber"/>.</summary>
public sealed record JobExecutionRecord
{
    public required string JobId { get; init; }

    public required string Thing { get; init; }

    public long ExecutionNumber { get; init; } = 1;

    public required string Status { get; init; }

    public IReadOnlyDictionary<string, string> StatusDetails { get; init; } = new Dictionary<string, string>();

    /// <summary>Moves on with every change; a device's expectedVersion is checked against it.</summary>
    public long Version { get; init; } = 1;

    public long QueuedMs { get; init; }

    public long? StartedMs { get; init; }

    public long UpdatedMs { get; init; }

    /// <summary>When the service sets it TIMED_OUT (the in-progress or step time-out), or null.</summary>
    public long? TimeoutAtMs { get; init; }

    public bool ForceCanceled { get; init; }

    public int RetryAttempt { get; init; }

    public bool IsPending => !ExecutionStatus.IsTerminal(Status);
}

/// <summary>A job template: a document and the settings a job made from it starts with.</summary>
public sealed record JobTemplateRecord
{
    public required string TemplateId { get; init; }

    public required string Arn { get; init; }

    public required string Description { get; init; }

    public required string Document { get; init; }

    public JobSettings Settings { get; init; } = new();

    public long CreatedMs { get; init; }
}
