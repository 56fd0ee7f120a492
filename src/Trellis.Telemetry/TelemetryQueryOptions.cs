using System.ComponentModel.DataAnnotations;

namespace Trellis.Telemetry;

/// <summary>
/// Limits of the analysts' SQL endpoint (<c>POST /api/telemetry/sql</c>), set with
/// <c>TRELLIS_TelemetryQuery__&lt;Name&gt;</c>. Any API key may query, a viewer too, so every
/// query is bounded in time, memory, concurrency and result size.
/// </summary>
public sealed class TelemetryQueryOptions
{
    /// <summary>A query still running after this is interrupted and answered with a 400.</summary>
    [Range(1, 3600)]
    public int TimeoutSeconds { get; set; } = 30;

    /// <summary>Memory one query may make the process grow by, in MiB, before it is interrupted (on top of DuckDB's own limit for its buffers).</summary>
    [Range(16, 65536)]
    public int MemoryMiB { get; set; } = 512;

    /// <summary>Queries running at once; one more is refused with a 429 ThrottlingException.</summary>
    [Range(1, 64)]
    public int MaxConcurrent { get; set; } = 2;

    /// <summary>Rows one answer holds at most (a request's maxRows may ask for fewer); beyond it the answer says truncated.</summary>
    [Range(1, 10_000_000)]
    public int MaxRows { get; set; } = 100_000;

    /// <summary>Size of one answer's rows at most, in bytes; beyond it the query is refused with a 413.</summary>
    [Range(1024, int.MaxValue)]
    public int MaxResultBytes { get; set; } = 16 * 1024 * 1024;

    /// <summary>Disk DuckDB may use to spill sorts, joins and aggregates that do not fit in memory, in MiB.</summary>
    [Range(64, 1_048_576)]
    public int SpillMiB { get; set; } = 2048;

    /// <summary>
    /// Threads of the time-series engine (DuckDB's worker pool: queries, compaction, exports).
    /// 0 = half the CPUs (at least one), so a heavy query leaves the broker a core.
    /// </summary>
    [Range(0, 256)]
    public int EngineThreads { get; set; }
}

/// <summary>Why the SQL endpoint refused or stopped a query.</summary>
public enum TelemetryQueryRefusal
{
    /// <summary>The statement is not a single SELECT over <c>points</c> with allowed functions (400).</summary>
    Statement,

    /// <summary>The query ran past its time-out and was interrupted (400).</summary>
    Timeout,

    /// <summary>The query needed more memory than its budget (400).</summary>
    Memory,

    /// <summary>The answer would exceed the result size limit (413).</summary>
    ResultTooLarge,

    /// <summary>Too many queries are running (429).</summary>
    Throttled,
}

/// <summary>A query the endpoint refused or stopped; the message says what to change.</summary>
public sealed class TelemetryQueryException(TelemetryQueryRefusal refusal, string message) : Exception(message)
{
    public TelemetryQueryRefusal Refusal { get; } = refusal;
}
