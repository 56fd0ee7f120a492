using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Trellis.Core.Errors;
using Trellis.Registry;
using Trellis.Storage;

namespace Trellis.Fleet;

/// <summary>A fleet metric (AWS's CreateFleetMetric): an aggregation over a fleet-index query, computed every period.</summary>
public sealed record FleetMetric(
    string Name,
    string QueryString,
    string AggregationType,
    IReadOnlyList<string> Values,
    int Period,
    string AggregationField,
    string? Description,
    string? QueryVersion,
    string IndexName,
    string? Unit,
    long Version,
    long CreatedMs,
    long UpdatedMs)
{
    /// <summary>The series its values go to in the time-series store (no thing name can contain a dot).</summary>
    public string Series => "fleet." + Name;
}

/// <summary>Writes one value of a fleet metric: time (ms), series, measure, value.</summary>
public delegate ValueTask FleetMetricSink(long timestampMs, string series, string measure, double value);

/// <summary>
/// Fleet metrics: definitions in <c>fleet_metrics</c> (trellis.db); a thread computes each metric
/// when it is created and then every period from the fleet index, and writes its values to the
/// time-series store as the series <c>fleet.{name}</c>, one measure per value (<c>count</c>,
/// <c>average</c>, …; <c>p50</c>, <c>p99.9</c> …; <c>cardinality</c>), so they can be queried and
/// charted like any telemetry.
/// </summary>
public sealed partial class FleetMetrics : IAsyncDisposable
{
    public static readonly IReadOnlyList<string> StatisticNames = ["count", "average", "sum", "minimum", "maximum", "sumOfSquares", "variance", "stdDeviation"];

    private readonly SqliteDatabase _db;
    private readonly FleetIndex _index;
    private readonly FleetMetricSink _sink;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, long> _due = new(StringComparer.Ordinal);
    private readonly Task _worker;
    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _wake = new(0);

    public FleetMetrics(SqliteDatabase db, FleetIndex index, FleetMetricSink sink, TimeProvider time, ILogger<FleetMetrics> logger, Func<string, string> arn)
    {
        _db = db;
        _index = index;
        _sink = sink;
        _time = time;
        _logger = logger;
        Arn = arn;
        _worker = Task.Run(RunAsync);
    }

    /// <summary>The ARN of a resource path (<c>fleetmetric/NAME</c>).</summary>
    public Func<string, string> Arn { get; }

    [GeneratedRegex("^[a-zA-Z0-9_\\-\\.]{1,128}$")]
    private static partial Regex NamePattern();

    public Result<FleetMetric> Create(FleetMetric metric)
    {
        ArgumentNullException.ThrowIfNull(metric);
        if (!NamePattern().IsMatch(metric.Name))
        {
            return new TrellisError.InvalidRequest($"Fleet metric name '{metric.Name}' is invalid: use 1-128 characters from a-z A-Z 0-9 _ - .");
        }

        if (Validate(metric) is { } invalid)
        {
            return invalid;
        }

        lock (_lock)
        {
            using var connection = _db.Open();
            if (Read(connection, metric.Name) is not null)
            {
                return new TrellisError.AlreadyExists($"Fleet metric {metric.Name} already exists.");
            }

            var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
            var created = metric with { Version = 1, CreatedMs = now, UpdatedMs = now, Values = ValuesOf(metric) };
            using var insert = SqliteCommands.Command(connection, "INSERT INTO fleet_metrics(name, definition, version, created_ms, updated_ms) VALUES ($n, $d, 1, $t, $t)",
                ("$n", metric.Name), ("$d", ToJson(created)), ("$t", now));
            insert.ExecuteNonQuery();
            _due[metric.Name] = 0; // the first value at once
            _wake.Release();
            return created;
        }
    }

    public Result<FleetMetric> Describe(string name)
    {
        using var connection = _db.Open();
        return Read(connection, name) is { } metric ? metric : NotFound(name);
    }

    public Page<FleetMetric> List(string? nextToken, int? maxResults)
    {
        var size = Math.Clamp(maxResults ?? 100, 1, 250);
        var after = string.Empty;
        if (!string.IsNullOrEmpty(nextToken))
        {
            var bytes = new byte[nextToken.Length];
            after = Convert.TryFromBase64String(nextToken, bytes, out var length) ? Encoding.UTF8.GetString(bytes, 0, length) : "\uFFFF"; // not ours: an empty page
        }

        using var connection = _db.Open();
        using var command = SqliteCommands.Command(connection, "SELECT definition, version, created_ms, updated_ms FROM fleet_metrics WHERE name > $a ORDER BY name LIMIT $l", ("$a", after), ("$l", size + 1));
        var metrics = new List<FleetMetric>();
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                metrics.Add(FromJson(reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3)));
            }
        }

        string? next = null;
        if (metrics.Count > size)
        {
            metrics.RemoveAt(size);
            next = Convert.ToBase64String(Encoding.UTF8.GetBytes(metrics[^1].Name));
        }

        return new Page<FleetMetric>(metrics, next);
    }

    /// <summary>Changes what a metric computes; members left null keep their value. The next value is computed at once.</summary>
    public TrellisError? Update(string name, Func<FleetMetric, FleetMetric> change, long? expectedVersion)
    {
        ArgumentNullException.ThrowIfNull(change);
        lock (_lock)
        {
            using var connection = _db.Open();
            if (Read(connection, name) is not { } current)
            {
                return NotFound(name);
            }

            if (expectedVersion is { } expected && expected != current.Version)
            {
                return new TrellisError.VersionConflict($"The version of fleet metric {name} is {current.Version}, not {expected}.");
            }

            var updated = change(current);
            updated = updated with { Values = ValuesOf(updated), Version = current.Version + 1, UpdatedMs = _time.GetUtcNow().ToUnixTimeMilliseconds() };
            if (Validate(updated) is { } invalid)
            {
                return invalid;
            }

            using var write = SqliteCommands.Command(connection, "UPDATE fleet_metrics SET definition = $d, version = $v, updated_ms = $t WHERE name = $n",
                ("$d", ToJson(updated)), ("$v", updated.Version), ("$t", updated.UpdatedMs), ("$n", name));
            write.ExecuteNonQuery();
            _due[name] = 0;
            _wake.Release();
            return null;
        }
    }

    public TrellisError? Delete(string name, long? expectedVersion)
    {
        lock (_lock)
        {
            using var connection = _db.Open();
            if (Read(connection, name) is not { } current)
            {
                return null; // AWS: deleting a metric that does not exist succeeds
            }

            if (expectedVersion is { } expected && expected != current.Version)
            {
                return new TrellisError.VersionConflict($"The version of fleet metric {name} is {current.Version}, not {expected}.");
            }

            using var delete = SqliteCommands.Command(connection, "DELETE FROM fleet_metrics WHERE name = $n", ("$n", name));
            delete.ExecuteNonQuery();
            _due.Remove(name);
            return null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        try
        {
            await _worker.WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (TimeoutException)
        {
            // a computation still running: it stops at its next check
        }

        _wake.Dispose();
        _stopping.Dispose();
    }

    private TrellisError? Validate(FleetMetric metric)
    {
        if (metric.Period is < 60 or > 86_400 || metric.Period % 60 != 0)
        {
            return new TrellisError.InvalidRequest($"The period must be a multiple of 60 seconds between 60 and 86400, not {metric.Period}.");
        }

        if (_index.CheckIndex(metric.IndexName) is { } missing)
        {
            return new TrellisError.InvalidRequest("Fleet metrics need fleet indexing: " + missing.Message);
        }

        if (FleetQuery.Parse(metric.QueryString, out _).Error is { } badQuery)
        {
            return badQuery;
        }

        switch (metric.AggregationType)
        {
            case "Statistics":
                var unknown = metric.Values.FirstOrDefault(v => !StatisticNames.Contains(v, StringComparer.Ordinal));
                return unknown is null ? null : new TrellisError.InvalidAggregation($"Statistics values are {string.Join(", ", StatisticNames)}; '{unknown}' is not one.");
            case "Percentiles":
                var bad = metric.Values.FirstOrDefault(v => !double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var p) || p is < 0 or > 100);
                return bad is null ? null : new TrellisError.InvalidAggregation($"Percentiles values are numbers from 0 to 100; '{bad}' is not one.");
            case "Cardinality":
                return metric.Values.Count == 0 ? null : new TrellisError.InvalidAggregation("Cardinality takes no values.");
            default:
                return new TrellisError.InvalidAggregation($"Aggregation type '{metric.AggregationType}' is not Statistics, Percentiles or Cardinality.");
        }
    }

    /// <summary>The values a metric emits: what it asked for, or all statistics / AWS's default percentiles.</summary>
    private static IReadOnlyList<string> ValuesOf(FleetMetric metric) => metric.Values.Count > 0 || metric.AggregationType == "Cardinality"
        ? metric.Values
        : metric.AggregationType == "Statistics" ? StatisticNames : [.. FleetIndex.DefaultPercents.Select(p => p.ToString(CultureInfo.InvariantCulture))];

    private async Task RunAsync()
    {
        var stopping = _stopping.Token;
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await _wake.WaitAsync(TimeSpan.FromSeconds(1), stopping);
                if (_index.Status == "ACTIVE" && _index.Configuration.Enabled)
                {
                    await ComputeDueAsync(stopping);
                }
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is Microsoft.Data.Sqlite.SqliteException or IOException or InvalidOperationException)
            {
                Log.Failed(_logger, e.Message, e);
            }
        }
    }

    private async Task ComputeDueAsync(CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        foreach (var metric in All())
        {
            lock (_lock)
            {
                if (_due.TryGetValue(metric.Name, out var due) && due > now)
                {
                    continue;
                }

                _due[metric.Name] = now + (metric.Period * 1000L);
            }

            foreach (var (measure, value) in Compute(metric))
            {
                cancellationToken.ThrowIfCancellationRequested();
                await _sink(now, metric.Series, measure, value);
            }
        }
    }

    /// <summary>The metric's values now (nothing when no thing matches or the field holds no numbers).</summary>
    private List<(string Measure, double Value)> Compute(FleetMetric metric)
    {
        var values = new List<(string, double)>();
        switch (metric.AggregationType)
        {
            case "Statistics" when _index.Statistics(metric.IndexName, metric.QueryString, metric.AggregationField) is { IsSuccess: true } result:
                var s = result.Value!;
                var all = new Dictionary<string, double?>
                {
                    ["count"] = s.Count,
                    ["average"] = s.Average,
                    ["sum"] = s.Sum,
                    ["minimum"] = s.Minimum,
                    ["maximum"] = s.Maximum,
                    ["sumOfSquares"] = s.SumOfSquares,
                    ["variance"] = s.Variance,
                    ["stdDeviation"] = s.StdDeviation,
                };
                values.AddRange(metric.Values.Where(v => all.GetValueOrDefault(v) is not null).Select(v => (v, all[v]!.Value)));
                break;
            case "Percentiles":
                var percents = metric.Values.Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToList();
                if (_index.Percentiles(metric.IndexName, metric.QueryString, metric.AggregationField, percents) is { IsSuccess: true } percentiles)
                {
                    values.AddRange(percentiles.Value!.Select(p => ("p" + p.Percent.ToString(CultureInfo.InvariantCulture), p.Value)));
                }

                break;
            case "Cardinality" when _index.Cardinality(metric.IndexName, metric.QueryString, metric.AggregationField) is { IsSuccess: true } cardinality:
                values.Add(("cardinality", cardinality.Value));
                break;
            default:
                break;
        }

        return values;
    }

    /// <summary>Every metric, a page at a time.</summary>
    private IEnumerable<FleetMetric> All()
    {
        string? token = null;
        do
        {
            var page = List(token, 250);
            foreach (var metric in page.Items)
            {
                yield return metric;
            }

            token = page.NextToken;
        }
        while (token is not null);
    }

    private static FleetMetric? Read(Microsoft.Data.Sqlite.SqliteConnection connection, string name)
    {
        using var command = SqliteCommands.Command(connection, "SELECT definition, version, created_ms, updated_ms FROM fleet_metrics WHERE name = $n", ("$n", name));
        using var reader = command.ExecuteReader();
        return reader.Read() ? FromJson(reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3)) : null;
    }

    private static string ToJson(FleetMetric m) => new JsonObject
    {
        ["name"] = m.Name,
        ["queryString"] = m.QueryString,
        ["aggregationType"] = m.AggregationType,
        ["values"] = new JsonArray([.. m.Values.Select(v => (JsonNode)v)]),
        ["period"] = m.Period,
        ["aggregationField"] = m.AggregationField,
        ["description"] = m.Description,
        ["queryVersion"] = m.QueryVersion,
        ["indexName"] = m.IndexName,
        ["unit"] = m.Unit,
    }.ToJsonString();

    private static FleetMetric FromJson(string json, long version, long created, long updated)
    {
        var o = JsonNode.Parse(json)!.AsObject();
        return new FleetMetric(
            o["name"]!.GetValue<string>(), o["queryString"]!.GetValue<string>(), o["aggregationType"]!.GetValue<string>(),
            [.. (o["values"] as JsonArray ?? []).Select(v => v!.GetValue<string>())], o["period"]!.GetValue<int>(), o["aggregationField"]!.GetValue<string>(),
            o["description"]?.GetValue<string>(), o["queryVersion"]?.GetValue<string>(), o["indexName"]!.GetValue<string>(), o["unit"]?.GetValue<string>(),
            version, created, updated);
    }

    private static TrellisError NotFound(string name) => new TrellisError.NotFound($"Fleet metric {name} cannot be found.");

    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Warning, Message = "Fleet metrics could not be computed ({Reason}); retrying in 1 s.")]
        public static partial void Failed(ILogger logger, string reason, Exception exception);
    }
}
