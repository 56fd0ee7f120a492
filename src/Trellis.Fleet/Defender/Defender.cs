using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Trellis.Core.Errors;
using Trellis.Core.Monitoring;
using Trellis.Registry;
using Trellis.Storage;

namespace Trellis.Fleet.Defender;

/// <summary>An active violation: a thing outside a behavior of a profile that applies to it, since <see cref="StartMs"/>.</summary>
public sealed record Violation(
    string ViolationId,
    string ThingName,
    string Profile,
    Behavior Behavior,
    MetricValue? LastValue,
    long StartMs,
    long LastMs,
    string? VerificationState,
    string? VerificationDescription);

/// <summary>A step of a violation: <c>in-alarm</c>, <c>alarm-cleared</c> or <c>alarm-invalidated</c>.</summary>
public sealed record ViolationEvent(
    string ViolationId,
    string ThingName,
    string Profile,
    Behavior Behavior,
    MetricValue? Value,
    string Type,
    long AtMs,
    string? VerificationState,
    string? VerificationDescription)
{
    public bool IsStatistical => Behavior.Criteria?.Statistic is not null;

    public bool Suppressed => Behavior.SuppressAlerts == true;
}

/// <summary>
/// Device Defender Detect: counts what each client does (<see cref="Activity"/>, fed by the broker),
/// turns the counts into datapoints per behavior (a window of durationSeconds for counts, each tick
/// for message sizes, each connection for the source address, each report for device-side metrics),
/// compares them with the behavior's value or with a percentile of the fleet's datapoints, and raises
/// and clears violations after consecutiveDatapointsToAlarm / …ToClear. Violations and their events
/// are kept in trellis.db; <see cref="ViolationRaised"/> tells the notifications.
/// </summary>
public sealed partial class Defender : IAsyncDisposable
{
    private const int TickMs = 1000;
    private static readonly TimeSpan ThingCacheLifetime = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan EventRetention = TimeSpan.FromDays(30);

    private readonly SqliteDatabase _db;
    private readonly RegistryService _registry;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Func<string, string> _arn;
    private readonly Lock _profilesLock = new();
    private readonly Lock _stateLock = new();
    private readonly ConcurrentDictionary<string, (bool Registered, HashSet<string> Groups, long AtMs)> _things = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Profile, string Behavior, string Thing), Streak> _streaks = [];
    private readonly Dictionary<string, long> _addressVersions = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _worker;
    private List<CompiledProfile> _profiles = [];
    private volatile bool _reload = true;
    private long _nextSweepMs;

    public Defender(SqliteDatabase db, RegistryService registry, TimeProvider time, ILogger<Defender> logger, Func<string, string> arn)
    {
        _db = db;
        _registry = registry;
        _time = time;
        _logger = logger;
        _arn = arn;
        Activity = new DeviceActivityTable(time);
        registry.ThingChanged += Forget;
        registry.ThingDeleted += Forget;
        registry.ThingGroupMembershipChanged += (thing, _) => Forget(thing);
        LoadActiveViolations();
        _worker = Task.Run(RunAsync);
    }

    /// <summary>The per-client counters the broker writes.</summary>
    public DeviceActivityTable Activity { get; }

    /// <summary>Raised (outside any lock) for each violation event, suppressed ones included.</summary>
    public event Action<ViolationEvent>? ViolationRaised;

    /// <summary>Datapoints evaluated since start (all behaviors): what the tests and the benchmark watch.</summary>
    public long Datapoints => Interlocked.Read(ref _datapoints);

    private long _datapoints;

    /// <summary>A profile or its targets changed: recompiled at once, so a new behavior counts from this moment.</summary>
    private void ProfilesChanged()
    {
        lock (_stateLock)
        {
            _reload = true;
            Reload();
        }
    }

    private void Forget(string thing) => _things.TryRemove(thing, out _);

    /// <summary>Handles a device's metrics report: its datapoints are evaluated at once. Null when accepted, else (code, message).</summary>
    public (string Code, string Message)? Report(string thing, ReadOnlyMemory<byte> payload, bool cbor, out long reportId)
    {
        reportId = 0;
        if (DeviceMetricsReport.Parse(payload, cbor, out var code, out var error) is not { } report)
        {
            return (code, error);
        }

        reportId = report.ReportId;
        var now = Now;
        var events = new List<ViolationEvent>();
        lock (_stateLock)
        {
            Reload();
            foreach (var profile in _profiles)
            {
                if (!Applies(profile, thing))
                {
                    continue;
                }

                foreach (var behavior in profile.Behaviors)
                {
                    switch (behavior.Kind)
                    {
                        case MetricKind.ReportedNumber when report.Numbers.TryGetValue(behavior.Metric, out var number):
                            var threshold = behavior.Threshold;
                            if (behavior.Statistic is not null)
                            {
                                behavior.Latest[thing] = number;
                                threshold = DefenderMetrics.Percentile([.. behavior.Latest.Values], behavior.Percent);
                            }

                            if (threshold is { } t)
                            {
                                Evaluate(behavior, thing, DefenderMetrics.IsNormal(behavior.Op, number, t), Count(number), now, events);
                            }

                            break;
                        case MetricKind.ReportedPorts when report.Ports.TryGetValue(behavior.Metric, out var ports):
                            Evaluate(behavior, thing, DefenderMetrics.IsNormal(behavior.Op, ports, behavior.Ports!), new MetricValue(null, null, [.. ports.Order()], null, null, null), now, events);
                            break;
                        case MetricKind.ReportedAddresses when report.Destinations is { } destinations:
                            Evaluate(behavior, thing, DefenderMetrics.IsNormal(behavior.Op, destinations, behavior.Networks!), Cidrs(destinations), now, events);
                            break;
                        default:
                            break;
                    }
                }
            }
        }

        Publish(events);
        return null;
    }

    public Page<Violation> ActiveViolations(string? thing, string? profile, string? criteriaType, bool listSuppressed, string? verificationState, string? nextToken, int? maxResults)
    {
        var size = Math.Clamp(maxResults ?? 100, 1, 250);
        var found = new List<Violation>();
        using var connection = _db.Open();
        using var command = SqliteCommands.Command(connection, """
            SELECT violation_id, thing, profile, behavior, last_value, start_ms, last_ms, verification_state, verification_description
            FROM defender_violations WHERE violation_id > $a AND ($t IS NULL OR thing = $t) AND ($p IS NULL OR profile = $p)
              AND ($v IS NULL OR COALESCE(verification_state, 'UNKNOWN') = $v)
            ORDER BY violation_id
            """, ("$a", After(nextToken)), ("$t", thing), ("$p", profile), ("$v", verificationState));
        using var reader = command.ExecuteReader();
        while (found.Count <= size && reader.Read())
        {
            var violation = new Violation(
                reader.GetString(0), reader.GetString(1), reader.GetString(2), JsonSerializer.Deserialize(reader.GetString(3), DefenderJson.Default.Behavior)!,
                reader.IsDBNull(4) ? null : JsonSerializer.Deserialize(reader.GetString(4), DefenderJson.Default.MetricValue),
                reader.GetInt64(5), reader.GetInt64(6), reader.IsDBNull(7) ? null : reader.GetString(7), reader.IsDBNull(8) ? null : reader.GetString(8));
            if (Wanted(violation.Behavior, criteriaType, listSuppressed))
            {
                found.Add(violation);
            }
        }

        return PageOf(found, size, v => v.ViolationId);
    }

    public Page<ViolationEvent> ViolationEvents(long startMs, long endMs, string? thing, string? profile, string? criteriaType, bool listSuppressed, string? verificationState, string? nextToken, int? maxResults)
    {
        var size = Math.Clamp(maxResults ?? 100, 1, 250);
        var found = new List<(string Key, ViolationEvent Event)>();
        using var connection = _db.Open();
        using var command = SqliteCommands.Command(connection, """
            SELECT id, violation_id, thing, profile, behavior, value, event_type, at_ms, verification_state, verification_description
            FROM defender_violation_events
            WHERE at_ms >= $s AND at_ms <= $e AND id > $a AND ($t IS NULL OR thing = $t) AND ($p IS NULL OR profile = $p)
              AND ($v IS NULL OR COALESCE(verification_state, 'UNKNOWN') = $v)
            ORDER BY id
            """, ("$s", startMs), ("$e", endMs), ("$a", After(nextToken)), ("$t", thing), ("$p", profile), ("$v", verificationState));
        using var reader = command.ExecuteReader();
        while (found.Count <= size && reader.Read())
        {
            var e = new ViolationEvent(
                reader.GetString(1), reader.GetString(2), reader.GetString(3), JsonSerializer.Deserialize(reader.GetString(4), DefenderJson.Default.Behavior)!,
                reader.IsDBNull(5) ? null : JsonSerializer.Deserialize(reader.GetString(5), DefenderJson.Default.MetricValue),
                reader.GetString(6), reader.GetInt64(7), reader.IsDBNull(8) ? null : reader.GetString(8), reader.IsDBNull(9) ? null : reader.GetString(9));
            if (Wanted(e.Behavior, criteriaType, listSuppressed))
            {
                found.Add((reader.GetString(0), e));
            }
        }

        var page = PageOf(found, size, f => f.Key);
        return new Page<ViolationEvent>([.. page.Items.Select(f => f.Event)], page.NextToken);
    }

    /// <summary>Records an operator's verdict on a violation (AWS's PutVerificationStateOnViolation).</summary>
    public TrellisError? SetVerificationState(string violationId, string state, string? description)
    {
        using var connection = _db.Open();
        var changed = 0;
        foreach (var table in new[] { "defender_violations", "defender_violation_events" })
        {
            using var update = SqliteCommands.Command(connection, $"UPDATE {table} SET verification_state = $s, verification_description = $d WHERE violation_id = $v",
                ("$s", state), ("$d", description), ("$v", violationId));
            changed += update.ExecuteNonQuery();
        }

        return changed > 0 ? null : new TrellisError.NotFound($"Violation {violationId} cannot be found.");
    }

    /// <summary>How many violations are active now (the fleet summary).</summary>
    public long ActiveCount()
    {
        using var connection = _db.Open();
        using var command = SqliteCommands.Command(connection, "SELECT COUNT(*) FROM defender_violations");
        return (long)command.ExecuteScalar()!;
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
            // an evaluation still running stops at its next check
        }

        _stopping.Dispose();
    }

    private static bool Wanted(Behavior behavior, string? criteriaType, bool listSuppressed) =>
        (listSuppressed || behavior.SuppressAlerts != true)
        && (criteriaType is null || criteriaType == (behavior.Criteria?.Statistic is null ? "STATIC" : "STATISTICAL"));

    private long Now => _time.GetUtcNow().ToUnixTimeMilliseconds();

    private async Task RunAsync()
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(TickMs), _time);
        try
        {
            while (await timer.WaitForNextTickAsync(_stopping.Token))
            {
                try
                {
                    Tick();
                }
                catch (Exception e) when (e is Microsoft.Data.Sqlite.SqliteException or IOException or InvalidOperationException)
                {
                    Log.Failed(_logger, e.Message, e);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // stopping
        }
    }

    /// <summary>One pass: every window that ended makes its datapoints; sizes and addresses since the last tick are evaluated.</summary>
    internal void Tick()
    {
        var now = Now;
        var events = new List<ViolationEvent>();
        lock (_stateLock)
        {
            Reload();

            // Only what some behavior reads is read: with no profile attached (the default) a tick
            // walks no client at all, however many are connected.
            var kinds = _profiles.SelectMany(p => p.Behaviors).ToList();
            var wantSizes = kinds.Any(b => b.Kind == MetricKind.MessageSize);
            var wantAddresses = kinds.Any(b => b.Kind == MetricKind.SourceAddress);
            var windowEnds = kinds.Any(b => b.Kind == MetricKind.WindowCount && now >= b.WindowEndMs);
            List<DeviceActivity> activities = wantSizes || wantAddresses || windowEnds ? Activity.Snapshot() : [];
            var sizes = new Dictionary<string, (int Largest, int Smallest)>(StringComparer.Ordinal);
            var addresses = new List<(string Thing, string Address)>();
            foreach (var activity in activities)
            {
                if (wantSizes && activity.TakeMessageSizes() is { } size)
                {
                    sizes[activity.ClientId] = size;
                }

                var version = wantAddresses ? activity.AddressVersion : 0; // read before the address: a newer connect is seen next tick
                if (wantAddresses && _addressVersions.GetValueOrDefault(activity.ClientId) != version && activity.SourceAddress is { } address)
                {
                    _addressVersions[activity.ClientId] = version;
                    addresses.Add((activity.ClientId, address));
                }
            }

            foreach (var profile in _profiles)
            {
                foreach (var behavior in profile.Behaviors)
                {
                    switch (behavior.Kind)
                    {
                        case MetricKind.WindowCount when now >= behavior.WindowEndMs:
                            CloseCountWindow(profile, behavior, activities, now, events);
                            break;
                        case MetricKind.MessageSize:
                            Sizes(profile, behavior, sizes, now, events);
                            break;
                        case MetricKind.SourceAddress:
                            foreach (var (thing, address) in addresses.Where(a => Applies(profile, a.Thing)))
                            {
                                if (IPAddress.TryParse(address, out var ip))
                                {
                                    Evaluate(behavior, thing, DefenderMetrics.IsNormal(behavior.Op, [ip], behavior.Networks!), Cidrs([ip]), now, events);
                                }
                            }

                            break;
                        default:
                            break;
                    }
                }
            }

            if (now >= _nextSweepMs)
            {
                _nextSweepMs = now + 10_000;
                Sweep(now, events);
            }
        }

        Publish(events);
    }

    private void CloseCountWindow(CompiledProfile profile, CompiledBehavior behavior, IReadOnlyList<DeviceActivity> activities, long now, List<ViolationEvent> events)
    {
        var windowStart = behavior.WindowEndMs - behavior.DurationMs;
        behavior.NextWindow(now);
        var datapoints = new List<(string Thing, long Value)>();
        foreach (var activity in activities)
        {
            var total = behavior.Read(activity);
            var had = behavior.Baselines.TryGetValue(activity.ClientId, out var baseline);
            behavior.Baselines[activity.ClientId] = total;
            if (!had && activity.CreatedMs < windowStart)
            {
                continue; // seen for the first time though older than the window (a reload): from now on
            }

            if (Applies(profile, activity.ClientId))
            {
                datapoints.Add((activity.ClientId, total - (had ? baseline : 0)));
            }
        }

        var threshold = behavior.Threshold ?? DefenderMetrics.Percentile([.. datapoints.Select(d => (double)d.Value)], behavior.Percent);
        if (threshold is not { } t)
        {
            return;
        }

        foreach (var (thing, value) in datapoints)
        {
            Evaluate(behavior, thing, DefenderMetrics.IsNormal(behavior.Op, value, t), Count(value), now, events);
        }
    }

    private void Sizes(CompiledProfile profile, CompiledBehavior behavior, Dictionary<string, (int Largest, int Smallest)> sizes, long now, List<ViolationEvent> events)
    {
        // Normal means every message passes: the largest must pass an upper bound, the smallest a lower one.
        var upper = behavior.Op.StartsWith("less", StringComparison.Ordinal);
        foreach (var (thing, size) in sizes)
        {
            if (!Applies(profile, thing))
            {
                continue;
            }

            var value = upper ? size.Largest : size.Smallest;
            if (behavior.Statistic is null)
            {
                Evaluate(behavior, thing, DefenderMetrics.IsNormal(behavior.Op, value, behavior.Threshold!.Value), Count(value), now, events);
            }
            else
            {
                behavior.Window[thing] = behavior.Window.TryGetValue(thing, out var seen) ? (upper ? Math.Max(seen, value) : Math.Min(seen, value)) : value;
            }
        }

        if (behavior.Statistic is not null && now >= behavior.WindowEndMs)
        {
            behavior.NextWindow(now);
            if (DefenderMetrics.Percentile([.. behavior.Window.Values.Select(v => (double)v)], behavior.Percent) is { } threshold)
            {
                foreach (var (thing, value) in behavior.Window)
                {
                    Evaluate(behavior, thing, DefenderMetrics.IsNormal(behavior.Op, value, threshold), Count(value), now, events);
                }
            }

            behavior.Window.Clear();
        }
    }

    /// <summary>One datapoint of one thing against one behavior: counts the streak, raises or clears the violation.</summary>
    private void Evaluate(CompiledBehavior behavior, string thing, bool normal, MetricValue value, long now, List<ViolationEvent> events)
    {
        Interlocked.Increment(ref _datapoints);
        var key = (behavior.Profile, behavior.Definition.Name, thing);
        _streaks.TryGetValue(key, out var streak);
        if (normal)
        {
            if (streak is null)
            {
                return;
            }

            streak.Breaching = 0;
            streak.Normal++;
            if (streak.ActiveId is { } id && streak.Normal >= behavior.ToClear)
            {
                _streaks.Remove(key);
                events.Add(EndViolation(id, thing, behavior.Profile, behavior.Definition, value, "alarm-cleared", now));
            }
            else if (streak.ActiveId is null)
            {
                _streaks.Remove(key);
            }

            return;
        }

        streak ??= _streaks[key] = new Streak();
        streak.Normal = 0;
        streak.Breaching++;
        if (streak.ActiveId is { } active)
        {
            using var connection = _db.Open();
            using var update = SqliteCommands.Command(connection, "UPDATE defender_violations SET last_value = $v, last_ms = $t WHERE violation_id = $id",
                ("$v", JsonSerializer.Serialize(value, DefenderJson.Default.MetricValue)), ("$t", now), ("$id", active));
            update.ExecuteNonQuery();
        }
        else if (streak.Breaching >= behavior.ToAlarm)
        {
            streak.ActiveId = Guid.NewGuid().ToString("N");
            events.Add(StartViolation(streak.ActiveId, thing, behavior.Profile, behavior.Definition, value, now));
        }
    }

    private ViolationEvent StartViolation(string id, string thing, string profile, Behavior behavior, MetricValue value, long now)
    {
        var behaviorJson = JsonSerializer.Serialize(behavior, DefenderJson.Default.Behavior);
        var valueJson = JsonSerializer.Serialize(value, DefenderJson.Default.MetricValue);
        using var connection = _db.Open();
        using var transaction = connection.BeginTransaction();
        using (var insert = SqliteCommands.Command(connection, """
            INSERT INTO defender_violations(violation_id, thing, profile, behavior_name, behavior, last_value, start_ms, last_ms)
            VALUES ($id, $thing, $p, $bn, $b, $v, $t, $t)
            """, ("$id", id), ("$thing", thing), ("$p", profile), ("$bn", behavior.Name), ("$b", behaviorJson), ("$v", valueJson), ("$t", now)))
        {
            insert.Transaction = transaction;
            insert.ExecuteNonQuery();
        }

        var e = new ViolationEvent(id, thing, profile, behavior, value, "in-alarm", now, null, null);
        InsertEvent(connection, transaction, e);
        transaction.Commit();
        Log.ViolationStarted(_logger, thing, profile, behavior.Name, behavior.Metric ?? string.Empty, id);
        return e;
    }

    private ViolationEvent EndViolation(string id, string thing, string profile, Behavior behavior, MetricValue? value, string type, long now)
    {
        using var connection = _db.Open();
        using var transaction = connection.BeginTransaction();
        string? state = null;
        string? description = null;
        using (var read = SqliteCommands.Command(connection, "SELECT verification_state, verification_description FROM defender_violations WHERE violation_id = $id", ("$id", id)))
        {
            read.Transaction = transaction;
            using var reader = read.ExecuteReader();
            if (reader.Read())
            {
                state = reader.IsDBNull(0) ? null : reader.GetString(0);
                description = reader.IsDBNull(1) ? null : reader.GetString(1);
            }
        }

        using (var delete = SqliteCommands.Command(connection, "DELETE FROM defender_violations WHERE violation_id = $id", ("$id", id)))
        {
            delete.Transaction = transaction;
            delete.ExecuteNonQuery();
        }

        var e = new ViolationEvent(id, thing, profile, behavior, value, type, now, state, description);
        InsertEvent(connection, transaction, e);
        transaction.Commit();
        Log.ViolationEnded(_logger, thing, profile, behavior.Name, type, id);
        return e;
    }

    private static void InsertEvent(Microsoft.Data.Sqlite.SqliteConnection connection, Microsoft.Data.Sqlite.SqliteTransaction transaction, ViolationEvent e)
    {
        // The id orders events by time and stays unique: the time, then the violation and its step.
        using var insert = SqliteCommands.Command(connection, """
            INSERT INTO defender_violation_events(id, violation_id, thing, profile, behavior, value, event_type, at_ms, verification_state, verification_description)
            VALUES ($id, $v, $thing, $p, $b, $val, $type, $t, $s, $d)
            """,
            ("$id", $"{e.AtMs:D15}-{e.ViolationId}-{e.Type}"), ("$v", e.ViolationId), ("$thing", e.ThingName), ("$p", e.Profile),
            ("$b", JsonSerializer.Serialize(e.Behavior, DefenderJson.Default.Behavior)),
            ("$val", e.Value is null ? null : JsonSerializer.Serialize(e.Value, DefenderJson.Default.MetricValue)),
            ("$type", e.Type), ("$t", e.AtMs), ("$s", e.VerificationState), ("$d", e.VerificationDescription));
        insert.Transaction = transaction;
        insert.ExecuteNonQuery();
    }

    /// <summary>Violations whose profile, behavior or target went away are invalidated; old events are pruned.</summary>
    private void Sweep(long now, List<ViolationEvent> events)
    {
        foreach (var (key, streak) in _streaks.ToList())
        {
            var profile = _profiles.FirstOrDefault(p => p.Name == key.Profile);
            var behavior = profile?.Behaviors.FirstOrDefault(b => b.Definition.Name == key.Behavior);
            if (behavior is not null && Applies(profile!, key.Thing))
            {
                continue;
            }

            _streaks.Remove(key);
            if (streak.ActiveId is { } id)
            {
                var definition = behavior?.Definition ?? StoredBehavior(id) ?? new Behavior(key.Behavior, null, null, null, null, null);
                events.Add(EndViolation(id, key.Thing, key.Profile, definition, null, "alarm-invalidated", now));
            }
        }

        // Clients idle for two of the longest windows are forgotten, with what the windows kept of them.
        var forgotten = Activity.ForgetIdle(now - (2L * DefenderMetrics.MaxDurationSeconds * 1000), [.. _streaks.Keys.Select(k => k.Thing)]);
        foreach (var id in forgotten)
        {
            _addressVersions.Remove(id);
            foreach (var behavior in _profiles.SelectMany(p => p.Behaviors))
            {
                behavior.Baselines.Remove(id);
                behavior.Latest.Remove(id);
            }
        }

        using var connection = _db.Open();
        using var prune = SqliteCommands.Command(connection, "DELETE FROM defender_violation_events WHERE at_ms < $t", ("$t", now - (long)EventRetention.TotalMilliseconds));
        prune.ExecuteNonQuery();
    }

    private Behavior? StoredBehavior(string violationId)
    {
        using var connection = _db.Open();
        using var command = SqliteCommands.Command(connection, "SELECT behavior FROM defender_violations WHERE violation_id = $id", ("$id", violationId));
        return command.ExecuteScalar() is string json ? JsonSerializer.Deserialize(json, DefenderJson.Default.Behavior) : null;
    }

    private void LoadActiveViolations()
    {
        using var connection = _db.Open();
        using var command = SqliteCommands.Command(connection, "SELECT violation_id, thing, profile, behavior_name FROM defender_violations");
        using var reader = command.ExecuteReader();
        lock (_stateLock)
        {
            while (reader.Read())
            {
                _streaks[(reader.GetString(2), reader.GetString(3), reader.GetString(1))] = new Streak { ActiveId = reader.GetString(0) };
            }
        }
    }

    /// <summary>Recompiles the profiles after a change, keeping the windows and baselines of behaviors that did not change.</summary>
    private void Reload()
    {
        if (!_reload)
        {
            return;
        }

        _reload = false;
        var now = Now;
        var activities = Activity.Snapshot();
        var old = _profiles.SelectMany(p => p.Behaviors).ToDictionary(b => (b.Profile, b.Json));
        var profiles = new List<CompiledProfile>();
        using var connection = _db.Open();
        var targets = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        using (var command = SqliteCommands.Command(connection, "SELECT profile, target_arn FROM security_profile_targets"))
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                (targets.TryGetValue(reader.GetString(0), out var set) ? set : targets[reader.GetString(0)] = new(StringComparer.Ordinal)).Add(reader.GetString(1));
            }
        }

        using (var command = SqliteCommands.Command(connection, "SELECT name, definition, version, created_ms, updated_ms FROM security_profiles ORDER BY name"))
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                var definition = FromRow(reader);
                if (!targets.TryGetValue(definition.Name, out var profileTargets))
                {
                    continue; // attached to nothing: nothing to evaluate
                }

                var behaviors = definition.Behaviors.Where(b => b.Metric is not null && b.Criteria is not null).Select(b =>
                {
                    var compiled = new CompiledBehavior(definition.Name, b);
                    if (old.TryGetValue((definition.Name, compiled.Json), out var kept))
                    {
                        return kept;
                    }

                    // A new behavior's first window starts now, from what each client has done so far.
                    compiled.NextWindow(now);
                    foreach (var activity in activities)
                    {
                        compiled.Baselines[activity.ClientId] = compiled.Read(activity);
                        if (compiled.Kind == MetricKind.MessageSize)
                        {
                            activity.TakeMessageSizes(); // sizes from before the behavior existed are not its datapoints
                        }
                        else if (compiled.Kind == MetricKind.SourceAddress)
                        {
                            _addressVersions[activity.ClientId] = activity.AddressVersion; // nor are connections made before it
                        }
                    }

                    return compiled;
                }).ToList();
                profiles.Add(new CompiledProfile(definition.Name, behaviors, profileTargets,
                    profileTargets.Contains(AllRegisteredThings), profileTargets.Contains(AllUnregisteredThings)));
            }
        }

        _profiles = profiles;
    }

    private bool Applies(CompiledProfile profile, string thing)
    {
        var now = Now;
        if (!_things.TryGetValue(thing, out var info) || now - info.AtMs > ThingCacheLifetime.TotalMilliseconds)
        {
            var registered = _registry.ThingExists(thing);
            info = (registered, registered ? _registry.PolicyGroupArnsFor(thing).ToHashSet(StringComparer.Ordinal) : [], now);
            _things[thing] = info;
        }

        return info.Registered
            ? profile.AllRegistered || info.Groups.Overlaps(profile.Targets)
            : profile.AllUnregistered;
    }

    private void Publish(List<ViolationEvent> events)
    {
        foreach (var e in events)
        {
            try
            {
                ViolationRaised?.Invoke(e);
            }
            catch (Exception ex) when (ex is InvalidOperationException or IOException)
            {
                Log.NotifyFailed(_logger, e.ViolationId, ex.Message, ex);
            }
        }
    }

    private static MetricValue Count(double value) => value == Math.Floor(value) && value >= 0
        ? new MetricValue((long)value, null, null, null, null, null)
        : new MetricValue(null, null, null, value, null, null);

    private static MetricValue Cidrs(IEnumerable<IPAddress> addresses) => new(null, [.. addresses.Select(a => a.ToString()).Distinct().Order(StringComparer.Ordinal)], null, null, null, null);

    private sealed class Streak
    {
        public int Breaching { get; set; }

        public int Normal { get; set; }

        public string? ActiveId { get; set; }
    }

    private sealed record CompiledProfile(string Name, List<CompiledBehavior> Behaviors, HashSet<string> Targets, bool AllRegistered, bool AllUnregistered);

    /// <summary>A behavior ready to evaluate, with its window state.</summary>
    private sealed class CompiledBehavior
    {
        public CompiledBehavior(string profile, Behavior definition)
        {
            Profile = profile;
            Definition = definition;
            Json = JsonSerializer.Serialize(definition, DefenderJson.Default.Behavior);
            Metric = definition.Metric!;
            Kind = DefenderMetrics.Known[Metric];
            var criteria = definition.Criteria!;
            Op = criteria.ComparisonOperator!;
            Statistic = criteria.Statistic;
            Percent = Statistic is null ? 0 : DefenderMetrics.Percent(Statistic);
            Threshold = criteria.Value is { } v && Statistic is null ? v.Count ?? v.Number : null;
            Networks = criteria.Value?.Cidrs is { } cidrs ? DefenderMetrics.Networks(cidrs) : null;
            Ports = criteria.Value?.Ports;
            ToAlarm = criteria.ConsecutiveDatapointsToAlarm ?? 1;
            ToClear = criteria.ConsecutiveDatapointsToClear ?? 1;
            DurationMs = (criteria.DurationSeconds ?? 1) * 1000L;
            Read = Metric switch
            {
                "aws:num-messages-sent" => a => a.MessagesSent,
                "aws:num-messages-received" => a => a.MessagesReceived,
                "aws:num-authorization-failures" => a => a.AuthorizationFailures,
                "aws:num-connection-attempts" => a => a.ConnectionAttempts,
                "aws:num-disconnects" => a => a.Disconnects,
                _ => _ => 0,
            };
        }

        public string Profile { get; }

        public Behavior Definition { get; }

        public string Json { get; }

        public string Metric { get; }

        public MetricKind Kind { get; }

        public string Op { get; }

        public string? Statistic { get; }

        public double Percent { get; }

        public double? Threshold { get; }

        public IReadOnlyList<IPNetwork>? Networks { get; }

        public IReadOnlyList<int>? Ports { get; }

        public int ToAlarm { get; }

        public int ToClear { get; }

        public long DurationMs { get; }

        public Func<DeviceActivity, long> Read { get; }

        /// <summary>When the current window ends.</summary>
        public long WindowEndMs { get; set; }

        /// <summary>Moves on to the next window: durationSeconds after the last one ended (or after now, the first time or after a stall).</summary>
        public void NextWindow(long now) =>
            WindowEndMs = WindowEndMs == 0 || now - WindowEndMs > DurationMs ? now + DurationMs : WindowEndMs + DurationMs;

        /// <summary>Each client's cumulative count when the window began.</summary>
        public Dictionary<string, long> Baselines { get; } = new(StringComparer.Ordinal);

        /// <summary>Each client's extreme message size in the window (statistical size behaviors).</summary>
        public Dictionary<string, int> Window { get; } = new(StringComparer.Ordinal);

        /// <summary>Each thing's latest reported value (statistical device-side behaviors).</summary>
        public Dictionary<string, double> Latest { get; } = new(StringComparer.Ordinal);
    }

    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Warning, Message = "Device Defender could not evaluate ({Reason}); trying again in 1 s.")]
        public static partial void Failed(ILogger logger, string reason, Exception exception);

        [LoggerMessage(Level = LogLevel.Warning, Message = "Violation {Id}: thing {Thing} is outside behavior '{Behavior}' ({Metric}) of security profile {Profile}. List it with ListActiveViolations; it clears when the thing is back within the behavior.")]
        public static partial void ViolationStarted(ILogger logger, string thing, string profile, string behavior, string metric, string id);

        [LoggerMessage(Level = LogLevel.Information, Message = "Violation {Id}: thing {Thing}, behavior '{Behavior}' of {Profile}: {Type}.")]
        public static partial void ViolationEnded(ILogger logger, string thing, string profile, string behavior, string type, string id);

        [LoggerMessage(Level = LogLevel.Warning, Message = "A violation notification for {Id} failed: {Reason}.")]
        public static partial void NotifyFailed(ILogger logger, string id, string reason, Exception exception);
    }
}
