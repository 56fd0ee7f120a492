namespace Trellis.Jobs;

/// <summary>A device's UpdateJobExecution request.</summary>
public sealed record JobUpdate
{
    public required string Status { get; init; }

    /// <summary>Replaces the execution's details; null leaves them as they are.</summary>
    public IReadOnlyDictionary<string, string>? StatusDetails { get; init; }

    public long? ExpectedVersion { get; init; }

    public long? ExecutionNumber { get; init; }

    public bool IncludeJobExecutionState { get; init; }

    public bool IncludeJobDocument { get; init; }

    /// <summary>Starts (or restarts) the step timer: TIMED_OUT unless the next update comes sooner.</summary>
    public long? StepTimeoutInMinutes { get; init; }
}
