using System.Collections.Concurrent;
using System.Globalization;
using System.Threading.Channels;
using DuckDB.NET.Data;
using Microsoft.Extensions.Logging;

namespace Trellis.Telemetry;

/// <summary>
/// The embedded time-series store: DuckDB in the data folder (<c>telemetry.duckdb</c>), one table
/// per UTC day (<c>p_YYYYMMDD</c>), so a time range reads only its days. Points arrive through a
/// bounded queue and are appended in batches by one writer; the latest value of every (thing,
/// measure) is also kept in memory for "latest per thing" queries. Once a day is over (plus a
/// grace period for late points) it is compacted: rewritten sorted by thing, measure and time, so
/// that one thing's range reads only the blocks that hold it. Compaction runs on its own
/// connection; points that arrive later for a compacted day go to <c>p_YYYYMMDD_late</c>, so the
/// writer never waits for it.
/// </summary>
public sealed partial class TelemetryStore : IAsyncDisposable
{
    private readonly string _connectionString;
    private readonly DuckDBConnection _writer;
    private readonly ILogger _logger;
    private readonly Channel<TelemetryPoint> _queue;
    private readonly ConcurrentDictionary<(string Thing, string Measure), (long TimestampMs, double Value)> _latest = new();

    /// <summary>Each thing's measures with a latest value, sorted (replaced, never changed in place): <see cref="LatestOf"/> without a walk over every thing.</summary>
    private readonly ConcurrentDictionary<string, string[]> _measuresOf = new(StringComparer.Ordinal);
    private readonly SortedSet<string> _partitions = new(StringComparer.Ordinal);
    private readonly Lock _partitionsLock = new();
    private readonly int _batchSize;
    private readonly TimeProvider _time;
    private readonly HashSet<string> _closed = new(StringComparer.Ordinal);
    private readonly Lock _appendLock = new();
    private readonly TelemetryQueryOptions _queryOptions;
    private readonly SemaphoreSlim _queries;
    private long _written;
    private long _pending;

    public TelemetryStore(string path, ILogger<TelemetryStore> logger, int queueCapacity = 1_000_000, int batchSize = 50_000, TimeProvider? time = null, int memoryLimitMiB = 256, TelemetryQueryOptions? queryOptions = null)
    {
        _queryOptions = queryOptions ?? new TelemetryQueryOptions();
        _queries = new SemaphoreSlim(_queryOptions.MaxConcurrent, _queryOptions.MaxConcurrent);
        var folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        ExportDirectory = System.IO.Path.Combine(folder, "exports");
        SpillDirectory = System.IO.Path.Combine(folder, "telemetry.tmp");
        foreach (var directory in new[] { ExportDirectory, SpillDirectory })
        {
            Directory.CreateDirectory(directory);
            foreach (var stale in Directory.EnumerateFiles(ExportDirectory))
            {
                File.Delete(stale); // left by a crash while an export was being sent
            }

            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
        }

        Path = path;
        _time = time ?? TimeProvider.System;
        _logger = logger;
        _batchSize = batchSize;
        _connectionString = $"Data Source={path}";
        _writer = new DuckDBConnection(_connectionString);
        _writer.Open();

        // DuckDB would otherwise cache up to 80 % of the machine's memory as the store grows; a
        // fixed budget keeps the server's memory flat under sustained ingest (queries spill to disk).
        // The engine is closed to the file system at its root, for every connection: external
        // access off (no file scans, ATTACH, COPY or extension installs) except the export and
        // spill folders, no extension autoloading, and the configuration locked so that no query
        // can undo it.
        var threads = _queryOptions.EngineThreads > 0 ? _queryOptions.EngineThreads : Math.Max(1, Environment.ProcessorCount / 2);
        foreach (var setting in new[]
        {
            $"SET memory_limit = '{memoryLimitMiB.ToString(CultureInfo.InvariantCulture)}MB'",
            $"SET threads = {threads.ToString(CultureInfo.InvariantCulture)}",
            $"SET temp_directory = '{Quote(SpillDirectory)}'",
            $"SET max_temp_directory_size = '{_queryOptions.SpillMiB.ToString(CultureInfo.InvariantCulture)}MB'",
            $"SET allowed_directories = ['{Quote(ExportDirectory + "/")}', '{Quote(SpillDirectory + "/")}']",
            "SET autoinstall_known_extensions = false",
            "SET autoload_known_extensions = false",
            "SET enable_external_access = false",
            "SET lock_configuration = true",
        })
        {
            using var command = _writer.CreateCommand();
            command.CommandText = setting;
            command.ExecuteNonQuery();
        }
        _queue = Channel.CreateBounded<TelemetryPoint>(new BoundedChannelOptions(queueCapacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        LoadPartitions();
    }

    /// <summary>How long the writer gathers points before a commit when fewer than a batch are waiting.</summary>
    public static TimeSpan CoalesceDelay { get; } = TimeSpan.FromMilliseconds(50);

    /// <summary>How long after its end a day still takes points directly, before compaction closes it.</summary>
    public static TimeSpan CompactionGrace { get; } = TimeSpan.FromHours(2);

    public string Path { get; }

    /// <summary>Where exports are written before they are sent (the only folder besides the spill folder the engine may write).</summary>
    public string ExportDirectory { get; }

    /// <summary>Where DuckDB spills what does not fit in its memory limit.</summary>
    public string SpillDirectory { get; }

    private static string Quote(string text) => text.Replace("'", "''", StringComparison.Ordinal);

    /// <summary>Points committed to the store since start.</summary>
    public long Written => Interlocked.Read(ref _written);

    /// <summary>Points queued and not yet committed.</summary>
    public long Pending => Interlocked.Read(ref _pending);

    /// <summary>What DuckDB's buffer manager holds now (it is capped by the memory limit given at start).</summary>
    public long EngineMemoryBytes()
    {
        using var connection = Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT CAST(coalesce(sum(memory_usage_bytes), 0) AS BIGINT) FROM duckdb_memory()";
        return (long)command.ExecuteScalar()!;
    }

    /// <summary>Queues a point; waits while the queue is full (back-pressure, nothing dropped).</summary>
    public ValueTask WriteAsync(TelemetryPoint point, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _pending);
        return _queue.Writer.WriteAsync(point, cancellationToken);
    }

    /// <summary>The writer: appends batches until cancelled, then writes what is queued.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var batch = new List<TelemetryPoint>(_batchSize);
        try
        {
            while (await _queue.Reader.WaitToReadAsync(cancellationToken))
            {
                // Every append is a commit (a WAL write and its sync): at low rates, gather points
                // for a moment instead of committing a handful at a time.
                if (_queue.Reader.Count < _batchSize)
                {
                    await Task.Delay(CoalesceDelay, cancellationToken);
                }

                while (batch.Count < _batchSize && _queue.Reader.TryRead(out var point))
                {
                    batch.Add(point);
                }

                Append(batch);
                batch.Clear();
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            while (_queue.Reader.TryRead(out var point))
            {
                batch.Add(point);
            }

            Append(batch);
        }
    }

    /// <summary>Waits until every point queued so far is committed (read-your-writes for tests and the API).</summary>
    public async Task FlushAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (Interlocked.Read(ref _pending) > 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(5);
        }
    }

    /// <summary>Raw points of one thing and measure in [from, to), oldest first.</summary>
    public List<TelemetryPoint> Range(string thing, string measure, long fromMs, long toMs, int limit)
    {
        var union = Union(fromMs, toMs);
        if (union is null)
        {
            return [];
        }

        using var connection = Open();
        using var command = connection.CreateCommand();
        command.CommandText = $"SELECT epoch_ms(ts), value FROM ({union}) WHERE thing = $thing AND measure = $measure AND ts >= make_timestamp($from * 1000) AND ts < make_timestamp($to * 1000) ORDER BY ts LIMIT {limit.ToString(CultureInfo.InvariantCulture)}";
        Parameters(command, ("thing", thing), ("measure", measure), ("from", fromMs), ("to", toMs));
        using var reader = command.ExecuteReader();
        var points = new List<TelemetryPoint>();
        while (reader.Read())
        {
            points.Add(new TelemetryPoint(reader.GetInt64(0), thing, measure, reader.GetDouble(1)));
        }

        return points;
    }

    /// <summary>Buckets of <paramref name="bucketSeconds"/> over [from, to) with avg, min, max, sum, count, first and last; all things when <paramref name="thing"/> is null.</summary>
    public List<TelemetryBucket> Downsample(string? thing, string measure, long fromMs, long toMs, long bucketSeconds)
    {
        var union = Union(fromMs, toMs);
        if (union is null)
        {
            return [];
        }

        using var connection = Open();
        using var command = connection.CreateCommand();
        var bucket = bucketSeconds.ToString(CultureInfo.InvariantCulture);
        command.CommandText =
            $"SELECT epoch_ms(time_bucket(INTERVAL '{bucket} seconds', ts, TIMESTAMP '1970-01-01')) AS b, avg(value), min(value), max(value), sum(value), count(*), arg_min(value, ts), arg_max(value, ts) " +
            $"FROM ({union}) WHERE ($thing IS NULL OR thing = $thing) AND measure = $measure AND ts >= make_timestamp($from * 1000) AND ts < make_timestamp($to * 1000) GROUP BY b ORDER BY b";
        Parameters(command, ("thing", thing), ("measure", measure), ("from", fromMs), ("to", toMs));
        using var reader = command.ExecuteReader();
        var buckets = new List<TelemetryBucket>();
        while (reader.Read())
        {
            buckets.Add(new TelemetryBucket(reader.GetInt64(0), Nullable(reader, 1), Nullable(reader, 2), Nullable(reader, 3), Nullable(reader, 4), reader.GetInt64(5), Nullable(reader, 6), Nullable(reader, 7)));
        }

        return buckets;
    }

    /// <summary>One aggregate over [from, to): avg, min, max, sum and count (first/last omitted: they need ordering).</summary>
    public TelemetryBucket Summary(string? thing, string measure, long fromMs, long toMs)
    {
        var union = Union(fromMs, toMs);
        if (union is null)
        {
            return new TelemetryBucket(fromMs, null, null, null, null, 0, null, null);
        }

        using var connection = Open();
        using var command = connection.CreateCommand();
        command.CommandText =
            $"SELECT avg(value), min(value), max(value), sum(value), count(*) FROM ({union}) " +
            "WHERE ($thing IS NULL OR thing = $thing) AND measure = $measure AND ts >= make_timestamp($from * 1000) AND ts < make_timestamp($to * 1000)";
        Parameters(command, ("thing", thing), ("measure", measure), ("from", fromMs), ("to", toMs));
        using var reader = command.ExecuteReader();
        reader.Read();
        return new TelemetryBucket(fromMs, Nullable(reader, 0), Nullable(reader, 1), Nullable(reader, 2), Nullable(reader, 3), reader.GetInt64(4), null, null);
    }

    /// <summary>
    /// The analysts' SQL endpoint: one SELECT (DuckDB's dialect) over the view <c>points</c> (time
    /// ts, thing, measure, value; every day of the store). The engine cannot touch the file system
    /// (external access is off and locked at start); the statement must pass
    /// <see cref="TelemetrySqlGuard"/>; it runs under <see cref="TelemetryQueryOptions"/>' limits:
    /// at most MaxConcurrent at once, interrupted at its time-out or when the process has grown by
    /// its memory budget, at most <paramref name="maxRows"/> rows and MaxResultBytes of them.
    /// Throws <see cref="TelemetryQueryException"/> saying which limit was hit.
    /// </summary>
    public (List<string> Columns, List<object?[]> Rows, bool Truncated) Query(string sql, int maxRows)
    {
        if (!_queries.Wait(0))
        {
            throw new TelemetryQueryException(TelemetryQueryRefusal.Throttled, $"{_queryOptions.MaxConcurrent} queries are already running: retry when one has finished (TRELLIS_TelemetryQuery__MaxConcurrent raises the limit).");
        }

        try
        {
            return RunQuery(sql, Math.Clamp(maxRows, 1, _queryOptions.MaxRows));
        }
        finally
        {
            _queries.Release();
        }
    }

    private (List<string> Columns, List<object?[]> Rows, bool Truncated) RunQuery(string sql, int maxRows)
    {
        using var connection = Open();
        using (var check = connection.CreateCommand())
        {
            check.CommandText = "SELECT json_serialize_sql(CAST($sql AS VARCHAR))";
            Parameters(check, ("sql", sql));
            var parsed = System.Text.Json.Nodes.JsonNode.Parse((string)check.ExecuteScalar()!)!;
            if (TelemetrySqlGuard.Check(parsed) is { } refusal)
            {
                throw new TelemetryQueryException(TelemetryQueryRefusal.Statement, refusal);
            }
        }

        using (var view = connection.CreateCommand())
        {
            view.CommandText = "CREATE TEMP VIEW points AS " + (Union(0, 253402300799999) ?? "SELECT CAST(NULL AS TIMESTAMP) AS ts, CAST(NULL AS VARCHAR) AS thing, CAST(NULL AS VARCHAR) AS measure, CAST(NULL AS DOUBLE) AS value WHERE false");
            view.ExecuteNonQuery();
        }

        using var command = connection.CreateCommand();
        command.CommandText = sql;

        // A watchdog interrupts the query at its time-out or when the process has grown by the
        // query's memory budget (DuckDB's memory_limit covers its buffers, not every allocation).
        var stopped = 0;
        var started = System.Diagnostics.Stopwatch.StartNew();
        var baseline = Environment.WorkingSet;
        var timeout = TimeSpan.FromSeconds(_queryOptions.TimeoutSeconds);
        var budget = (long)_queryOptions.MemoryMiB * 1024 * 1024;
        using var watchdog = new Timer(_ =>
        {
            if (Volatile.Read(ref stopped) != 0)
            {
                return;
            }

            var reason = started.Elapsed >= timeout ? TelemetryQueryRefusal.Timeout
                : Environment.WorkingSet - baseline > budget ? TelemetryQueryRefusal.Memory
                : (TelemetryQueryRefusal?)null;
            if (reason is { } why && Interlocked.CompareExchange(ref stopped, (int)why + 1, 0) == 0)
            {
                try
                {
                    command.Cancel();
                }
                catch (ObjectDisposedException)
                {
                }
            }
        }, null, 50, 50);

        try
        {
            using var reader = command.ExecuteReader();
            var columns = Enumerable.Range(0, reader.FieldCount).Select(reader.GetName).ToList();
            var rows = new List<object?[]>();
            var truncated = false;
            long bytes = 0;
            while (reader.Read())
            {
                if (rows.Count == maxRows)
                {
                    truncated = true;
                    break;
                }

                var row = new object?[reader.FieldCount];
                for (var i = 0; i < row.Length; i++)
                {
                    row[i] = reader.IsDBNull(i) ? null : reader.GetValue(i);
                    bytes += row[i] switch { null => 5, string text => text.Length + 3, _ => 25 };
                }

                if (bytes > _queryOptions.MaxResultBytes)
                {
                    throw new TelemetryQueryException(TelemetryQueryRefusal.ResultTooLarge, $"the answer is larger than {_queryOptions.MaxResultBytes} bytes after {rows.Count} rows: select fewer columns, aggregate, or ask for fewer rows (maxRows).");
                }

                rows.Add(row);
            }

            if (Volatile.Read(ref stopped) != 0)
            {
                throw Stopped(stopped);
            }

            return (columns, rows, truncated);
        }
        catch (Exception e) when (e is DuckDBException or OperationCanceledException && Volatile.Read(ref stopped) != 0)
        {
            throw Stopped(stopped);
        }
        catch (DuckDBException e) when (e.Message.Contains("Out of Memory", StringComparison.OrdinalIgnoreCase))
        {
            throw new TelemetryQueryException(TelemetryQueryRefusal.Memory, $"the query needs more memory than the store may use ({e.Message.Split('\n')[0]}): aggregate before sorting or joining, or query a shorter range.");
        }
        catch (DuckDBException e)
        {
            throw new TelemetryQueryException(TelemetryQueryRefusal.Statement, $"SQL error: {e.Message.Split('\n')[0]}");
        }
        finally
        {
            Interlocked.CompareExchange(ref stopped, -1, 0);
        }

        TelemetryQueryException Stopped(int why) => (TelemetryQueryRefusal)(why - 1) == TelemetryQueryRefusal.Timeout
            ? new TelemetryQueryException(TelemetryQueryRefusal.Timeout, $"the query ran longer than {_queryOptions.TimeoutSeconds} s and was stopped: narrow the time range or aggregate more (TRELLIS_TelemetryQuery__TimeoutSeconds).")
            : new TelemetryQueryException(TelemetryQueryRefusal.Memory, $"the query grew the server by more than {_queryOptions.MemoryMiB} MiB and was stopped: aggregate before sorting or joining, or query a shorter range (TRELLIS_TelemetryQuery__MemoryMiB).");
    }

    /// <summary>The latest value of <paramref name="measure"/> for each of <paramref name="things"/> that has one (from memory, no scan).</summary>
    public List<TelemetryPoint> Latest(string measure, IEnumerable<string> things)
    {
        var points = new List<TelemetryPoint>();
        foreach (var thing in things)
        {
            if (_latest.TryGetValue((thing, measure), out var latest))
            {
                points.Add(new TelemetryPoint(latest.TimestampMs, thing, measure, latest.Value));
            }
        }

        return points;
    }

    /// <summary>Every measure of <paramref name="thing"/> with its latest value, by measure name (from memory; the thing's own measures only).</summary>
    public List<TelemetryPoint> LatestOf(string thing)
    {
        var points = new List<TelemetryPoint>();
        foreach (var measure in _measuresOf.GetValueOrDefault(thing) ?? [])
        {
            if (_latest.TryGetValue((thing, measure), out var latest))
            {
                points.Add(new TelemetryPoint(latest.TimestampMs, thing, measure, latest.Value));
            }
        }

        return points;
    }

    /// <summary>A fresh file name in <see cref="ExportDirectory"/> for <see cref="Export"/>.</summary>
    public string NewExportFile(string extension) => System.IO.Path.Combine(ExportDirectory, $"export-{Guid.NewGuid():N}.{extension}");

    /// <summary>
    /// Writes the points of [from, to) (optionally of one thing and/or measure) to <paramref name="file"/>
    /// as CSV with a header, or as Parquet (columns time TIMESTAMP, thing, measure, value), for
    /// Spark and BI tools. Returns how many rows were written.
    /// </summary>
    public long Export(string file, bool parquet, string? thing, string? measure, long fromMs, long toMs)
    {
        if (!System.IO.Path.GetFullPath(file).StartsWith(ExportDirectory + "/", StringComparison.Ordinal))
        {
            throw new ArgumentException($"exports are written in {ExportDirectory}, the one folder the engine may write: use NewExportFile.", nameof(file));
        }

        var union = Union(fromMs, toMs) ?? "SELECT CAST(NULL AS TIMESTAMP) AS ts, CAST(NULL AS VARCHAR) AS thing, CAST(NULL AS VARCHAR) AS measure, CAST(NULL AS DOUBLE) AS value WHERE false";
        using var connection = Open();
        using var command = connection.CreateCommand();
        var format = parquet ? "(FORMAT PARQUET)" : "(FORMAT CSV, HEADER)";
        command.CommandText =
            $"COPY (SELECT ts AS time, thing, measure, value FROM ({union}) WHERE ($thing IS NULL OR thing = $thing) AND ($measure IS NULL OR measure = $measure) " +
            $"AND ts >= make_timestamp($from * 1000) AND ts < make_timestamp($to * 1000) ORDER BY ts, thing, measure) TO '{file.Replace("'", "''", StringComparison.Ordinal)}' {format}";
        Parameters(command, ("thing", thing), ("measure", measure), ("from", fromMs), ("to", toMs));
        return command.ExecuteNonQuery();
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _writer.DisposeAsync();
    }

    private DuckDBConnection Open()
    {
        var connection = new DuckDBConnection(_connectionString);
        connection.Open();
        return connection;
    }

    private void Append(List<TelemetryPoint> batch)
    {
        if (batch.Count == 0)
        {
            return;
        }

        try
        {
            // The lock only orders appends against compaction closing a day: a closed day's points go to its _late table.
            lock (_appendLock)
            {
                foreach (var day in batch.GroupBy(p => Partition(p.TimestampMs)))
                {
                    var table = _closed.Contains(day.Key) ? day.Key + "_late" : day.Key;
                    EnsurePartition(table);
                    using var appender = _writer.CreateAppender(table);
                    foreach (var point in day)
                    {
                        appender.CreateRow()
                            .AppendValue(DateTime.UnixEpoch.AddMilliseconds(point.TimestampMs))
                            .AppendValue(point.Thing)
                            .AppendValue(point.Measure)
                            .AppendValue(point.Value)
                            .EndRow();
                    }
                }
            }

            // Only this writer thread changes the latest values and the measure lists.
            foreach (var point in batch)
            {
                var key = (point.Thing, point.Measure);
                if (!_latest.TryGetValue(key, out var existing))
                {
                    _latest[key] = (point.TimestampMs, point.Value);
                    var known = _measuresOf.GetValueOrDefault(point.Thing) ?? [];
                    var at = Array.BinarySearch(known, point.Measure, StringComparer.Ordinal);
                    _measuresOf[point.Thing] = [.. known.AsSpan(0, ~at), point.Measure, .. known.AsSpan(~at)];
                }
                else if (existing.TimestampMs <= point.TimestampMs)
                {
                    _latest[key] = (point.TimestampMs, point.Value);
                }
            }

            Interlocked.Add(ref _written, batch.Count);
        }
        catch (DuckDBException e)
        {
            LogWriteFailed(_logger, batch.Count, e);
        }
        finally
        {
            Interlocked.Add(ref _pending, -batch.Count);
        }
    }

    /// <summary>Keeps <paramref name="measure"/> (or every measure without its own setting, for "*") for <paramref name="days"/> days; null keeps it forever.</summary>
    public void SetRetention(string measure, int? days)
    {
        using var connection = Open();
        using var command = connection.CreateCommand();
        command.CommandText = days is null
            ? "DELETE FROM retention WHERE measure = $measure"
            : "INSERT OR REPLACE INTO retention VALUES ($measure, $days)";
        Parameters(command, ("measure", measure), ("days", days));
        command.ExecuteNonQuery();
    }

    /// <summary>Retention in days by measure ("*" is the default for the others).</summary>
    public Dictionary<string, int> Retention()
    {
        using var connection = Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT measure, days FROM retention ORDER BY measure";
        using var reader = command.ExecuteReader();
        var retention = new Dictionary<string, int>(StringComparer.Ordinal);
        while (reader.Read())
        {
            retention[reader.GetString(0)] = reader.GetInt32(1);
        }

        return retention;
    }

    /// <summary>
    /// Applies retention: a day whose every measure has expired is dropped whole (with its _late
    /// table); otherwise the expired measures' points are deleted from it. Runs on its own
    /// connection, beside the writer. Returns the days dropped.
    /// </summary>
    public List<string> ApplyRetention()
    {
        var retention = Retention();
        var dropped = new List<string>();
        if (retention.Count == 0)
        {
            return dropped;
        }

        var now = _time.GetUtcNow();
        bool Expired(DateTimeOffset dayEnd, int days) => dayEnd.AddDays(days) <= now;
        List<string> days;
        lock (_partitionsLock)
        {
            days = _partitions.Select(p => p[..10]).Distinct(StringComparer.Ordinal).ToList();
        }

        using var connection = Open();
        foreach (var day in days)
        {
            var end = DayEnd(day);
            var explicitMeasures = retention.Where(r => r.Key != "*").ToList();
            var defaultExpired = retention.TryGetValue("*", out var fallback) && Expired(end, fallback);
            var tables = new[] { day, day + "_late" };
            if (defaultExpired && explicitMeasures.All(r => Expired(end, r.Value)))
            {
                Execute(connection, string.Join(' ', tables.Select(t => $"DROP TABLE IF EXISTS {t};")));
                lock (_partitionsLock)
                {
                    _partitions.Remove(day);
                    _partitions.Remove(day + "_late");
                }

                dropped.Add(day);
                continue;
            }

            foreach (var table in tables.Where(t => { lock (_partitionsLock) { return _partitions.Contains(t); } }))
            {
                foreach (var (measure, keep) in explicitMeasures.Where(r => Expired(end, r.Value)))
                {
                    Execute(connection, $"DELETE FROM {table} WHERE measure = '{measure.Replace("'", "''", StringComparison.Ordinal)}'");
                }

                if (defaultExpired)
                {
                    var kept = string.Join(", ", explicitMeasures.Select(r => $"'{r.Key.Replace("'", "''", StringComparison.Ordinal)}'"));
                    Execute(connection, kept.Length == 0 ? $"DELETE FROM {table}" : $"DELETE FROM {table} WHERE measure NOT IN ({kept})");
                }
            }
        }

        return dropped;
    }

    /// <summary>
    /// Compacts every day that ended more than <see cref="CompactionGrace"/> ago and is not compacted
    /// yet: closes it to direct appends, then rewrites it sorted by thing, measure and time on a
    /// connection of its own. Returns the days compacted.
    /// </summary>
    public List<string> Compact()
    {
        var now = _time.GetUtcNow();
        List<string> due;
        lock (_partitionsLock)
        {
            due = _partitions.Where(p => !p.EndsWith("_late", StringComparison.Ordinal) && DayEnd(p) + CompactionGrace <= now).ToList();
        }

        var done = new List<string>();
        using var connection = Open();
        foreach (var day in due)
        {
            lock (_appendLock)
            {
                if (!_closed.Add(day))
                {
                    continue;
                }
            }

            using var command = connection.CreateCommand();
            command.CommandText =
                $"BEGIN TRANSACTION; CREATE TABLE {day}__sorted AS SELECT * FROM {day} ORDER BY thing, measure, ts; DROP TABLE {day}; " +
                $"ALTER TABLE {day}__sorted RENAME TO {day}; INSERT INTO compacted VALUES ('{day}'); COMMIT;";
            try
            {
                command.ExecuteNonQuery();
                done.Add(day);
            }
            catch (DuckDBException e)
            {
                using var rollback = connection.CreateCommand();
                rollback.CommandText = "ROLLBACK";
                try
                {
                    rollback.ExecuteNonQuery();
                }
                catch (DuckDBException)
                {
                }

                LogCompactionFailed(_logger, day, e);
            }
        }

        return done;
    }

    private void EnsurePartition(string name)
    {
        lock (_partitionsLock)
        {
            if (_partitions.Contains(name))
            {
                return;
            }
        }

        using var command = _writer.CreateCommand();
        command.CommandText = $"CREATE TABLE IF NOT EXISTS {name} (ts TIMESTAMP, thing VARCHAR, measure VARCHAR, value DOUBLE)";
        command.ExecuteNonQuery();
        lock (_partitionsLock)
        {
            _partitions.Add(name);
        }
    }

    private void LoadPartitions()
    {
        using (var create = _writer.CreateCommand())
        {
            create.CommandText = "CREATE TABLE IF NOT EXISTS compacted (partition VARCHAR PRIMARY KEY); CREATE TABLE IF NOT EXISTS retention (measure VARCHAR PRIMARY KEY, days INTEGER NOT NULL)";
            create.ExecuteNonQuery();
        }

        using (var command = _writer.CreateCommand())
        {
            command.CommandText = "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'p\\_%' ESCAPE '\\' AND table_name NOT LIKE '%\\_\\_sorted' ESCAPE '\\' ORDER BY table_name";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                _partitions.Add(reader.GetString(0));
            }
        }

        using (var command = _writer.CreateCommand())
        {
            command.CommandText = "SELECT partition FROM compacted";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                _closed.Add(reader.GetString(0));
            }
        }
    }

    private void Execute(DuckDBConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        try
        {
            command.ExecuteNonQuery();
        }
        catch (DuckDBException e)
        {
            LogRetentionFailed(_logger, sql, e);
        }
    }

    private static DateTimeOffset DayEnd(string partition) =>
        DateTimeOffset.ParseExact(partition.AsSpan(2, 8), "yyyyMMdd", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal).AddDays(1);

    /// <summary>The day tables that overlap [from, to), as one UNION ALL; null when there are none.</summary>
    private string? Union(long fromMs, long toMs)
    {
        var first = Partition(fromMs);
        var last = Partition(Math.Max(fromMs, toMs - 1));
        List<string> days;
        lock (_partitionsLock)
        {
            // "\uffff" after the last day takes its _late table too.
            days = _partitions.GetViewBetween(first, last + "\uffff").ToList();
        }

        return days.Count == 0 ? null : string.Join(" UNION ALL ", days.Select(d => $"SELECT * FROM {d}"));
    }

    private static string Partition(long timestampMs) =>
        "p_" + DateTimeOffset.FromUnixTimeMilliseconds(Math.Clamp(timestampMs, 0, 253402300799999)).UtcDateTime.ToString("yyyyMMdd", CultureInfo.InvariantCulture);

    private static void Parameters(DuckDBCommand command, params (string Name, object? Value)[] parameters)
    {
        foreach (var (name, value) in parameters)
        {
            command.Parameters.Add(new DuckDBParameter(name, value ?? DBNull.Value));
        }
    }

    private static double? Nullable(System.Data.Common.DbDataReader reader, int column) => reader.IsDBNull(column) ? null : reader.GetDouble(column);

    [LoggerMessage(EventId = 7002, Level = LogLevel.Warning, Message = "Compacting telemetry day {Day} failed; it stays unsorted (queries still work, slower) and is retried at the next maintenance run.")]
    private static partial void LogCompactionFailed(ILogger logger, string day, Exception exception);

    [LoggerMessage(EventId = 7003, Level = LogLevel.Warning, Message = "Applying telemetry retention failed ({Sql}); it is retried at the next maintenance run.")]
    private static partial void LogRetentionFailed(ILogger logger, string sql, Exception exception);

    [LoggerMessage(EventId = 7001, Level = LogLevel.Error, Message = "Writing {Count} telemetry points to the store failed; they are lost. Check disk space and the data folder.")]
    private static partial void LogWriteFailed(ILogger logger, int count, Exception exception);
}
