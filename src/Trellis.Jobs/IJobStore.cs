namespace Trellis.Jobs;

/// <summary>
/// Where jobs, their executions, the targets their rollout has not reached yet, and job templates
/// live. Every method that writes more than one row does so in one transaction; the SQLite
/// implementation is <see cref="SqliteJobStore"/>, and its SQL is kept portable for a PostgreSQL one.
/// </summary>
public interface IJobStore
{
    /// <summary>Adds a job and the things its rollout will reach; false when the id is taken.</summary>
    bool InsertJob(JobRecord job, IReadOnlyCollection<string> things);

    JobRecord? GetJob(string jobId);

    /// <summary>Jobs in id order after <paramref name="after"/>, filtered by status, target selection and a target ARN.</summary>
    IReadOnlyList<JobRecord> ListJobs(string? status, string? targetSelection, string? targetArn, string? after, int limit);

    /// <summary>Jobs that still roll out, time out or wait for their start: IN_PROGRESS or SCHEDULED.</summary>
    IReadOnlyList<JobRecord> ActiveJobs();

    /// <summary>Removes a job with its executions and unreached targets.</summary>
    void DeleteJob(string jobId);

    /// <summary>Things the rollout has not reached yet, oldest first.</summary>
    IReadOnlyList<string> PendingTargets(string jobId, int limit);

    int PendingTargetCount(string jobId);

    /// <summary>The next things the rollout reaches, oldest first, with the place of the last one (what <see cref="Release"/> takes).</summary>
    (IReadOnlyList<string> Things, long Through) NextTargets(string jobId, int limit);

    /// <summary>The pending executions (as <see cref="PendingExecutions(string)"/>) of the job's unreached things up to <paramref name="through"/>; things with none are left out.</summary>
    IReadOnlyDictionary<string, List<JobExecutionRecord>> PendingExecutionsOfTargets(string jobId, long through);

    /// <summary>
    /// One unit of work, set-based: the job written, an execution shaped as <paramref name="queued"/>
    /// (its thing ignored) created for each unreached thing up to <paramref name="through"/>, and those
    /// things taken off the unreached targets. Returns how many executions were created.
    /// </summary>
    int Release(JobRecord job, long through, JobExecutionRecord queued);

    /// <summary>Adds a thing the rollout will reach (a CONTINUOUS job's group gained it); false when it is already a target.</summary>
    bool AddPendingTarget(string jobId, string thing);

    /// <summary>
    /// One unit of work: the job (when given) and every execution in <paramref name="executions"/>
    /// written, and the things in <paramref name="reached"/> taken off the unreached targets (a thing
    /// in <paramref name="reached"/> has no execution of the job before this one).
    /// </summary>
    void Save(JobRecord? job, IReadOnlyCollection<JobExecutionRecord> executions, IReadOnlyCollection<string>? reached = null);

    /// <summary>An execution: the given number, or the latest.</summary>
    JobExecutionRecord? GetExecution(string jobId, string thing, long? executionNumber = null);

    /// <summary>The latest execution of each job on a thing that is QUEUED or IN_PROGRESS, in queue order.</summary>
    IReadOnlyList<JobExecutionRecord> PendingExecutions(string thing);

    /// <summary>A job's executions (the latest per thing) in thing order after <paramref name="after"/>.</summary>
    IReadOnlyList<JobExecutionRecord> ExecutionsOfJob(string jobId, string? status, string? after, int limit);

    /// <summary>A thing's executions (the latest per job) in job order after <paramref name="after"/>.</summary>
    IReadOnlyList<JobExecutionRecord> ExecutionsOfThing(string thing, string? status, string? after, int limit);

    /// <summary>A job's executions that are QUEUED or IN_PROGRESS (the latest per thing).</summary>
    IReadOnlyList<JobExecutionRecord> PendingExecutionsOfJob(string jobId);

    /// <summary>How many of a job's things stand in each status (the latest execution per thing).</summary>
    IReadOnlyDictionary<string, int> CountByStatus(string jobId);

    /// <summary>Executions of a job first queued after <paramref name="sinceMs"/> (first attempts only): what the rollout rate counts.</summary>
    int ReachedSince(string jobId, long sinceMs);

    /// <summary>Executions whose time-out is due at <paramref name="nowMs"/>.</summary>
    IReadOnlyList<JobExecutionRecord> DueTimeouts(long nowMs, int limit);

    /// <summary>The earliest time-out still to come, or null.</summary>
    long? NextTimeoutMs();

    /// <summary>Removes one execution (DeleteJobExecution).</summary>
    void DeleteExecution(string jobId, string thing, long executionNumber);

    bool InsertTemplate(JobTemplateRecord template);

    JobTemplateRecord? GetTemplate(string templateId);

    IReadOnlyList<JobTemplateRecord> ListTemplates(string? after, int limit);

    bool DeleteTemplate(string templateId);
}
