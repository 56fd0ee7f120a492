using System.Collections.Concurrent;
using System.Globalization;
using System.Threading.Channels;
using DuckDB.NET.Data;
using Microsoft.Extensions.Logging;

namespace Trellis.Telemetry;

/// <summary>
/// The embedded time-series store: DuckDB in the data folder (<c>telemetry.duckdb</c>), one table
/// per UTC day (<c>p_YYYYMMDD</c>), so a time range reads only its days and retention drops whole
/// days. Points arrive through a bounded queue and are appended in batches by one writer; the
/// latest value of every (thing, measure) is also kept in memory for "latest per thing" queries.
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
    private long _written;
    private long _pending;

    public TelemetryStore(string path, ILogger<TelemetryStore> logger, int queueCapacity = 1_000_000, int batchSize = 50_000)
    {
        Path = path;
        _logger = logger;
        _batchSize = batchSize;
        _connectionString = $"Data Source={path}";
        _writer = new DuckDBConnection(_connectionString);
        _writer.Open();
        _queue = Channel.CreateBounded<TelemetryPoint>(new BoundedChannelOptions(queueCapacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        LoadPartitions();
    }

    public string Path { get; }

    /// <summary>Points committed to the store since start.</summary>
    public long Written => Interlocked.Read(ref _written);

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
            foreach (var day in batch.GroupBy(p => Partition(p.TimestampMs)))
            {
                EnsurePartition(day.Key);
                using var appender = _writer.CreateAppender(day.Key);
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
        using var command = _writer.CreateCommand();
        command.CommandText = "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'p\\_%' ESCAPE '\\' ORDER BY table_name";
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            _partitions.Add(reader.GetString(0));
        }
    }

    /// <summary>The day tables that overlap [from, to), as one UNION ALL; null when there are none.</summary>
    private string? Union(long fromMs, long toMs)
    {
        var first = Partition(fromMs);
        var last = Partition(Math.Max(fromMs, toMs - 1));
        List<string> days;
        lock (_partitionsLock)
        {
            days = _partitions.GetViewBetween(first, last).ToList();
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

    [LoggerMessage(EventId = 7001, Level = LogLevel.Error, Message = "Writing {Count} telemetry points to the store failed; they are lost. Check disk space and the data folder.")]
    private static partial void LogWriteFailed(ILogger logger, int count, Exception exception);
}
