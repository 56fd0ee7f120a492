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
    private readonly SortedSet<string> _partitions = new(StringComparer.Ordinal);
    private readonly Lock _partitionsLock = new();
    private readonly int _batchSize;
    private readonly TimeProvider _time;
    private readonly HashSet<string> _closed = new(StringComparer.Ordinal);
    private readonly Lock _appendLock = new();
    private long _written;
    private long _pending;

    public TelemetryStore(string path, ILogger<TelemetryStore> logger, int queueCapacity = 1_000_000, int batchSize = 50_000, TimeProvider? time = null, int memoryLimitMiB = 256)
    {
        Path = path;
        _time = time ?? TimeProvider.System;
        _logger = logger;
        _batchSize = batchSize;
        _connectionString = $"Data Source={path}";
        _writer = new DuckDBConnection(_connectionString);
        _writer.Open();

        // DuckDB would otherwise cache up to 80 % of the machine's memory as the store grows; a
        // fixed budget keeps the server's memory flat under sustained ingest (queries spill to disk).
        using (var limit = _writer.CreateCommand())
        {
            limit.CommandText = $"SET memory_limit = '{memoryLimitMiB.ToString(CultureInfo.InvariantCulture)}MB'";
            limit.ExecuteNonQuery();
        }
        _queue = Channel.CreateBounded<TelemetryPoint>(new BoundedChannelOptions(queueCapacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        LoadPartitions();
    }

    /// <summary>How long the writer gathers points before a commit when fewer than a batch are waiting.</summary>
    public static TimeSpan CoalesceDelay { get; } = TimeSpan.FromMilliseconds(50);

    /// <summary>How long after its end a day still takes points directly, before compaction closes it.</summary>
    public static TimeSpan CompactionGrace { get; } = TimeSpan.FromHours(2);

    public string Path { get; }

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
    /// ts, thing, measure, value; every day of the store). Anything but a single SELECT, table
    /// functions (read_csv, glob …) and <c>getenv</c> are refused before the query runs, so the
    /// endpoint reads the store and nothing else. At most <paramref name="maxRows"/> rows are returned.
    /// </summary>
    public (List<string> Columns, List<object?[]> Rows, bool Truncated) Query(string sql, int maxRows, TimeSpan timeout)
    {
        using var connection = Open();
        using (var check = connection.CreateCommand())
        {
            check.CommandText = "SELECT json_serialize_sql(CAST($sql AS VARCHAR))";
            Parameters(check, ("sql", sql));
            var parsed = System.Text.Json.Nodes.JsonNode.Parse((string)check.ExecuteScalar()!)!;
            if (parsed["error"]?.GetValue<bool>() == true)
            {
                throw new InvalidOperationException(parsed["error_message"]?.GetValue<string>() is { } message && message.StartsWith("Only SELECT", StringComparison.Ordinal)
                    ? "only a SELECT is allowed: the SQL endpoint is read-only"
                    : $"SQL error: {parsed["error_message"]?.GetValue<string>()}");
            }

            if (parsed["statements"]?.AsArray().Count != 1)
            {
                throw new InvalidOperationException("send one SELECT statement");
            }

            if (Forbidden(parsed) is { } forbidden)
            {
                throw new InvalidOperationException(forbidden);
            }
        }

        using (var view = connection.CreateCommand())
        {
            view.CommandText = "CREATE TEMP VIEW points AS " + (Union(0, 253402300799999) ?? "SELECT CAST(NULL AS TIMESTAMP) AS ts, CAST(NULL AS VARCHAR) AS thing, CAST(NULL AS VARCHAR) AS measure, CAST(NULL AS DOUBLE) AS value WHERE false");
            view.ExecuteNonQuery();
        }

        using var command = connection.CreateCommand();
        command.CommandText = sql;
        using var cancel = new CancellationTokenSource(timeout);
        using var registration = cancel.Token.Register(command.Cancel);
        using var reader = command.ExecuteReader();
        var columns = Enumerable.Range(0, reader.FieldCount).Select(reader.GetName).ToList();
        var rows = new List<object?[]>();
        var truncated = false;
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
            }

            rows.Add(row);
        }

        return (columns, rows, truncated);
    }

    /// <summary>Why a parsed statement is refused (a table function or a function that reads the machine), or null.</summary>
    private static string? Forbidden(System.Text.Json.Nodes.JsonNode? node)
    {
        switch (node)
        {
            case System.Text.Json.Nodes.JsonObject obj:
                if (obj["type"]?.GetValueKind() == System.Text.Json.JsonValueKind.String && obj["type"]!.GetValue<string>() == "TABLE_FUNCTION")
                {
                    return "table functions (read_csv, read_parquet, glob …) are not allowed: the SQL endpoint reads the store's points only";
                }

                if (obj["function_name"]?.GetValueKind() == System.Text.Json.JsonValueKind.String && obj["function_name"]!.GetValue<string>() is "getenv" or "current_setting")
                {
                    return $"the function {obj["function_name"]!.GetValue<string>()} is not allowed here";
                }

                foreach (var (_, child) in obj)
                {
                    if (Forbidden(child) is { } reason)
                    {
                        return reason;
                    }
                }

                return null;
            case System.Text.Json.Nodes.JsonArray array:
                foreach (var child in array)
                {
                    if (Forbidden(child) is { } reason)
                    {
                        return reason;
                    }
                }

                return null;
            default:
                return null;
        }
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

    /// <summary>
    /// Writes the points of [from, to) (optionally of one thing and/or measure) to <paramref name="file"/>
    /// as CSV with a header, or as Parquet (columns time TIMESTAMP, thing, measure, value), for
    /// Spark and BI tools. Returns how many rows were written.
    /// </summary>
    public long Export(string file, bool parquet, string? thing, string? measure, long fromMs, long toMs)
    {
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

            foreach (var point in batch)
            {
                _latest.AddOrUpdate((point.Thing, point.Measure), (point.TimestampMs, point.Value),
                    (_, existing) => existing.TimestampMs > point.TimestampMs ? existing : (point.TimestampMs, point.Value));
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
