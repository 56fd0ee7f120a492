namespace Trellis.Jobs;

/// <summary>A job's states, as AWS IoT names them.</summary>
public static class JobStatus
{
    public const string Scheduled = "SCHEDULED";
    public const string InProgress = "IN_PROGRESS";
    public const string Canceled = "CANCELED";
    public const string Completed = "COMPLETED";
    public const string DeletionInProgress = "DELETION_IN_PROGRESS";
}

/// <summary>
/// A job execution's states. QUEUED and IN_PROGRESS are pending; every other state is terminal and
/// never changes again (a retry is a new execution with the next execution number).
/// </summary>
public static class ExecutionStatus
{
    public const string Queued = "QUEUED";
    public const string InProgress = "IN_PROGRESS";
    public const string Succeeded = "SUCCEEDED";
    public const string Failed = "FAILED";
    public const string TimedOut = "TIMED_OUT";
    public const string Rejected = "REJECTED";
    public const string Removed = "REMOVED";
    public const string Canceled = "CANCELED";

    public static IReadOnlyList<string> All { get; } = [Queued, InProgress, Succeeded, Failed, TimedOut, Rejected, Removed, Canceled];

    public static bool IsTerminal(string status) => status is not (Queued or InProgress);

    /// <summary>The states a device may report: IN_PROGRESS and the three it decides itself.</summary>
    public static bool DeviceMaySet(string status) => status is InProgress or Succeeded or Failed or Rejected;
}
