using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Trellis.Core.Errors;
using Trellis.Core.Topics;
using Trellis.Rules.Sql;
using Trellis.Storage;

namespace Trellis.Rules.Alarms;

/// <summary>
/// An alarm model: a condition over a topic's messages in the rules SQL (<c>SELECT … FROM 'filter'
/// WHERE condition</c>), a severity, and which thing a message is about (a SQL expression, by default
/// <c>clientid()</c>). A message that meets the condition raises the thing's alarm; one on the same
/// topic that does not clears it (when <see cref="ClearOnNormal"/>).
/// </summary>
public sealed record AlarmModel(
    string Name,
    string Sql,
    string Severity,
    string? ThingExpression,
    string? Description,
    bool ClearOnNormal,
    long Version,
    long CreatedMs,
    long UpdatedMs);

/// <summary>An alarm of one model for one thing: ACTIVE, ACKNOWLEDGED or CLEARED, with its steps.</summary>
public sealed record Alarm(
    string Id,
    string Model,
    string Thing,
    string Severity,
    string State,
    JsonNode? Details,
    long StartedMs,
    long UpdatedMs,
    long? ClearedMs,
    IReadOnlyList<AlarmStep> History);

/// <summary>One step of an alarm's life: the state it entered, when, who took it (<c>trellis</c> for the engine) and why.</summary>
public sealed record AlarmStep(string State, long AtMs, string Actor, string? Comment);

/// <summary>
/// Alarms on telemetry: models in <c>alarm_models</c>, alarms and their history in <c>alarms</c> and
/// <c>alarm_history</c> (trellis.db), one open alarm per model and thing (a unique index says so). The
/// broker hands it the messages its models want; a worker evaluates them in order. Operators
/// acknowledge and clear through the API; <see cref="Changed"/> tells the notifications of each step.
/// </summary>
public sealed partial class AlarmEngine : IAsyncDisposable
{
    public const string Active = "ACTIVE";
    public const string Acknowledged = "ACKNOWLEDGED";
    public const string Cleared = "CLEARED";
    public const string EngineActor = "trellis";
    public static readonly IReadOnlyList<string> Severities = ["CRITICAL", "MAJOR", "MINOR", "WARNING", "INDETERMINATE"];
    private const int QueueCapacity = 100_000;

    private readonly SqliteDatabase _db;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly string _accountId;
    private readonly Lock _lock = new();
    private readonly QueueWorker<Message> _queue;
    private readonly Dictionary<(string Model, string Thing), (string Id, long DetailsWrittenMs)> _open = [];
    private Compiled[] _models = [];
    private long _dropped;
    private long _evaluated;

    public AlarmEngine(SqliteDatabase db, TimeProvider time, ILogger<AlarmEngine> logger, string accountId)
    {
        _db = db;
        _time = time;
        _logger = logger;
        _accountId = accountId;
        Load();
        _queue = new QueueWorker<Message>(QueueCapacity, BoundedChannelFullMode.DropWrite, EvaluateLogged);
    }

    /// <summary>Raised (outside the lock) after each step of an alarm: raised, acknowledged, cleared.</summary>
    public event Action<Alarm, AlarmStep>? Changed;

    /// <summary>Messages that found the queue full and were not evaluated (the broker never waits for alarms).</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    public long Evaluated => Interlocked.Read(ref _evaluated);

    [GeneratedRegex("^[a-zA-Z0-9_-]{1,128}$")]
    private static partial Regex NamePattern();

    /// <summary>Cheap, on the broker's packet thread: does a model watch this topic?</summary>
    public bool Wants(string topic)
    {
        foreach (var model in Volatile.Read(ref _models))
        {
            if (TopicMatcher.Matches(model.Sql.TopicFilter, topic))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Queues a message; never blocks (a full queue drops it and counts it).</summary>
    public void Enqueue(string topic, ReadOnlyMemory<byte> payload, string? clientId, string? principal)
    {
        if (!_queue.TryWrite(new Message(topic, payload, clientId, principal, _time.GetUtcNow().ToUnixTimeMilliseconds())))
        {
            if (Interlocked.Increment(ref _dropped) % 10_000 == 1)
            {
                Log.Dropped(_logger, QueueCapacity);
            }
        }
    }

    /// <summary>Creates or replaces a model. Its open alarms stay open and follow the new condition.</summary>
    public Result<AlarmModel> PutModel(AlarmModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (!NamePattern().IsMatch(model.Name))
        {
            return new TrellisError.InvalidRequest($"Alarm model name '{model.Name}' is invalid: use 1-128 characters from a-z A-Z 0-9 _ -.");
        }

        if (!Severities.Contains(model.Severity, StringComparer.Ordinal))
        {
            return new TrellisError.InvalidRequest($"Severity '{model.Severity}' is not one of {string.Join(", ", Severities)}.");
        }

        try
        {
            _ = new Compiled(model);
        }
        catch (SqlSyntaxException e)
        {
            return new TrellisError.SqlParse(e.Message);
        }

        lock (_lock)
        {
            using var connection = _db.Open();
            var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
            var current = ReadModel(connection, model.Name);
            var stored = model with { Version = (current?.Version ?? 0) + 1, CreatedMs = current?.CreatedMs ?? now, UpdatedMs = now };
            using var upsert = SqliteCommands.Command(connection, """
                INSERT INTO alarm_models(name, definition, version, created_ms, updated_ms) VALUES ($n, $d, $v, $c, $u)
                ON CONFLICT(name) DO UPDATE SET definition = excluded.definition, version = excluded.version, updated_ms = excluded.updated_ms
                """, ("$n", model.Name), ("$d", ToJson(stored)), ("$v", stored.Version), ("$c", stored.CreatedMs), ("$u", now));
            upsert.ExecuteNonQuery();
            LoadModels(connection);
            return stored;
        }
    }

    public Result<AlarmModel> DescribeModel(string name)
    {
        using var connection = _db.Open();
        return ReadModel(connection, name) is { } model ? model : new TrellisError.NotFound($"Alarm model {name} cannot be found.");
    }

    public List<AlarmModel> ListModels() => [.. Volatile.Read(ref _models).Select(m => m.Model)];

    /// <summary>Deletes a model; its open alarms are cleared, saying why.</summary>
    public TrellisError? DeleteModel(string name, string actor)
    {
        List<(Alarm, AlarmStep)> steps = [];
        lock (_lock)
        {
            using var connection = _db.Open();
            using var delete = SqliteCommands.Command(connection, "DELETE FROM alarm_models WHERE name = $n", ("$n", name));
            if (delete.ExecuteNonQuery() == 0)
            {
                return new TrellisError.NotFound($"Alarm model {name} cannot be found.");
            }

            LoadModels(connection);
            foreach (var (key, open) in _open.Where(o => o.Key.Model == name).ToList())
            {
                steps.Add(Step(connection, open.Id, Cleared, actor, $"alarm model {name} was deleted"));
                _open.Remove(key);
            }
        }

        Notify(steps);
        return null;
    }

    /// <summary>Alarms, newest first: open ones (ACTIVE and ACKNOWLEDGED) unless <paramref name="states"/> says otherwise.</summary>
    public (List<Alarm> Items, string? NextToken) List(IReadOnlyCollection<string>? states, string? thing, string? model, string? severity, string? nextToken, int? maxResults)
    {
        var size = Math.Clamp(maxResults ?? 100, 1, 250);
        var offset = int.TryParse(nextToken, NumberStyles.None, CultureInfo.InvariantCulture, out var o) ? o : 0;
        states = states is { Count: > 0 } ? states : [Active, Acknowledged];
        using var connection = _db.Open();
        using var command = SqliteCommands.Command(connection, $"""
            SELECT id, model, thing, severity, state, details, started_ms, updated_ms, cleared_ms FROM alarms
            WHERE state IN ({string.Join(", ", states.Select((_, i) => "$s" + i.ToString(CultureInfo.InvariantCulture)))})
              AND ($t IS NULL OR thing = $t) AND ($m IS NULL OR model = $m) AND ($v IS NULL OR severity = $v)
            ORDER BY started_ms DESC, id DESC LIMIT $l OFFSET $o
            """, [.. states.Select((s, i) => ("$s" + i.ToString(CultureInfo.InvariantCulture), (object?)s)), ("$t", thing), ("$m", model), ("$v", severity), ("$l", size + 1), ("$o", offset)]);
        var alarms = ReadAlarms(command, connection: null);
        string? next = null;
        if (alarms.Count > size)
        {
            alarms.RemoveAt(size);
            next = (offset + size).ToString(CultureInfo.InvariantCulture);
        }

        return (alarms, next);
    }

    /// <summary>One alarm with its history.</summary>
    public Result<Alarm> Get(string id)
    {
        using var connection = _db.Open();
        return Read(connection, id) is { } alarm ? alarm : NotFound(id);
    }

    public Result<Alarm> Acknowledge(string id, string actor, string? comment) => Transition(id, Acknowledged, actor, comment);

    public Result<Alarm> Clear(string id, string actor, string? comment) => Transition(id, Cleared, actor, comment);

    /// <summary>Open alarms now, by severity (the fleet summary).</summary>
    public Dictionary<string, long> OpenBySeverity()
    {
        using var connection = _db.Open();
        using var command = SqliteCommands.Command(connection, "SELECT severity, COUNT(*) FROM alarms WHERE state <> 'CLEARED' GROUP BY severity");
        using var reader = command.ExecuteReader();
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        while (reader.Read())
        {
            counts[reader.GetString(0)] = reader.GetInt64(1);
        }

        return counts;
    }

    public ValueTask DisposeAsync() => _queue.DisposeAsync();

    private Result<Alarm> Transition(string id, string state, string actor, string? comment)
    {
        (Alarm, AlarmStep) step;
        lock (_lock)
        {
            using var connection = _db.Open();
            if (Read(connection, id) is not { } alarm)
            {
                return NotFound(id);
            }

            if (alarm.State == Cleared || (state == Acknowledged && alarm.State == Acknowledged))
            {
                return new TrellisError.InvalidStateTransition($"Alarm {id} is {alarm.State}: it cannot become {state}.");
            }

            step = Step(connection, id, state, actor, comment);
            if (state == Cleared)
            {
                _open.Remove((alarm.Model, alarm.Thing));
            }
        }

        Notify([step]);
        return step.Item1;
    }

    private void EvaluateLogged(Message message)
    {
        try
        {
            Evaluate(message);
        }
        catch (Exception e) when (e is SqliteException or InvalidOperationException or JsonException)
        {
            Log.Failed(_logger, message.Topic, e.Message, e);
        }
    }

    private void Evaluate(Message message)
    {
        Interlocked.Increment(ref _evaluated);
        RuleContext? context = null;
        List<(Alarm, AlarmStep)> steps = [];
        foreach (var model in Volatile.Read(ref _models))
        {
            if (!TopicMatcher.Matches(model.Sql.TopicFilter, message.Topic))
            {
                continue;
            }

            context ??= new RuleContext
            {
                Topic = message.Topic,
                Payload = RuleContext.ParsePayload(message.Payload),
                RawPayload = message.Payload,
                ClientId = message.ClientId,
                Principal = message.Principal,
                TimestampMs = message.AtMs,
                AccountId = _accountId,
            };
            if (model.Thing(context) is not { Length: > 0 } thing || model.Sql.Condition(context) is not { } holds)
            {
                continue; // not about a thing, or the condition says neither yes nor no (a member the message lacks)
            }

            lock (_lock)
            {
                // Most messages change nothing (no alarm, or one still on within the second): no database then.
                var key = (model.Model.Name, thing);
                var open = _open.TryGetValue(key, out var found) ? found : ((string Id, long DetailsWrittenMs)?)null;
                if (holds && open is null)
                {
                    using var connection = _db.Open();
                    var details = (model.Sql.Project(context) as JsonNode)?.ToJsonString();
                    var id = Guid.NewGuid().ToString("N");
                    steps.Add(Step(connection, id, Active, EngineActor, "condition met", transaction =>
                    {
                        using var insert = SqliteCommands.Command(connection, """
                            INSERT INTO alarms(id, model, thing, severity, state, details, started_ms, updated_ms) VALUES ($id, $m, $t, $s, 'ACTIVE', $d, $at, $at)
                            """, ("$id", id), ("$m", model.Model.Name), ("$t", thing), ("$s", model.Model.Severity), ("$d", details), ("$at", message.AtMs));
                        insert.Transaction = transaction;
                        insert.ExecuteNonQuery();
                    }));
                    _open[key] = (id, message.AtMs);
                    Log.Raised(_logger, model.Model.Name, thing, model.Model.Severity, id);
                }
                else if (holds && open is { } still && message.AtMs - still.DetailsWrittenMs >= 1000)
                {
                    // The latest values of an alarm that is still on, written at most once a second.
                    using var connection = _db.Open();
                    using var update = SqliteCommands.Command(connection, "UPDATE alarms SET details = $d WHERE id = $id",
                        ("$d", (model.Sql.Project(context) as JsonNode)?.ToJsonString()), ("$id", still.Id));
                    update.ExecuteNonQuery();
                    _open[key] = (still.Id, message.AtMs);
                }
                else if (!holds && open is { } ended && model.Model.ClearOnNormal)
                {
                    using var connection = _db.Open();
                    steps.Add(Step(connection, ended.Id, Cleared, EngineActor, "condition no longer met"));
                    _open.Remove(key);
                }
            }
        }

        Notify(steps);
    }

    /// <summary>
    /// Moves an alarm to <paramref name="state"/> and appends the step to its history in one
    /// transaction (with <paramref name="create"/>, which inserts a new alarm, in place of the move); returns both.
    /// </summary>
    private (Alarm, AlarmStep) Step(SqliteConnection connection, string id, string state, string actor, string? comment, Action<SqliteTransaction>? create = null)
    {
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        using var transaction = connection.BeginTransaction();
        if (create is not null)
        {
            create(transaction);
        }
        else
        {
            using var update = SqliteCommands.Command(connection, "UPDATE alarms SET state = $s, updated_ms = $at, cleared_ms = CASE WHEN $s = 'CLEARED' THEN $at ELSE cleared_ms END WHERE id = $id",
                ("$s", state), ("$at", now), ("$id", id));
            update.Transaction = transaction;
            update.ExecuteNonQuery();
        }

        using (var insert = SqliteCommands.Command(connection, """
            INSERT INTO alarm_history(alarm_id, step, state, at_ms, actor, comment)
            VALUES ($id, (SELECT COUNT(*) FROM alarm_history WHERE alarm_id = $id) + 1, $s, $at, $a, $c)
            """, ("$id", id), ("$s", state), ("$at", now), ("$a", actor), ("$c", comment)))
        {
            insert.Transaction = transaction;
            insert.ExecuteNonQuery();
        }

        transaction.Commit();
        return (Read(connection, id)!, new AlarmStep(state, now, actor, comment));
    }

    private void Notify(List<(Alarm Alarm, AlarmStep Step)> steps)
    {
        foreach (var (alarm, step) in steps)
        {
            try
            {
                Changed?.Invoke(alarm, step);
            }
            catch (Exception e) when (e is InvalidOperationException or IOException)
            {
                Log.NotifyFailed(_logger, alarm.Id, e.Message, e);
            }
        }
    }

    private void Load()
    {
        using var connection = _db.Open();
        LoadModels(connection);
        using var command = SqliteCommands.Command(connection, "SELECT id, model, thing, updated_ms FROM alarms WHERE state <> 'CLEARED'");
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            _open[(reader.GetString(1), reader.GetString(2))] = (reader.GetString(0), reader.GetInt64(3));
        }
    }

    private void LoadModels(SqliteConnection connection)
    {
        using var command = SqliteCommands.Command(connection, "SELECT name, definition, version, created_ms, updated_ms FROM alarm_models ORDER BY name");
        using var reader = command.ExecuteReader();
        var models = new List<Compiled>();
        while (reader.Read())
        {
            models.Add(new Compiled(FromRow(reader)));
        }

        Volatile.Write(ref _models, [.. models]);
    }

    private static AlarmModel? ReadModel(SqliteConnection connection, string name)
    {
        using var command = SqliteCommands.Command(connection, "SELECT name, definition, version, created_ms, updated_ms FROM alarm_models WHERE name = $n", ("$n", name));
        using var reader = command.ExecuteReader();
        return reader.Read() ? FromRow(reader) : null;
    }

    private static AlarmModel FromRow(SqliteDataReader reader)
    {
        var o = JsonNode.Parse(reader.GetString(1))!.AsObject();
        return new AlarmModel(
            reader.GetString(0), o["sql"]!.GetValue<string>(), o["severity"]!.GetValue<string>(), o["thing"]?.GetValue<string>(), o["description"]?.GetValue<string>(),
            o["clearOnNormal"]?.GetValue<bool>() ?? true, reader.GetInt64(2), reader.GetInt64(3), reader.GetInt64(4));
    }

    private static string ToJson(AlarmModel m) => new JsonObject
    {
        ["sql"] = m.Sql,
        ["severity"] = m.Severity,
        ["thing"] = m.ThingExpression,
        ["description"] = m.Description,
        ["clearOnNormal"] = m.ClearOnNormal,
    }.ToJsonString();

    private static Alarm? Read(SqliteConnection connection, string id)
    {
        using var command = SqliteCommands.Command(connection, "SELECT id, model, thing, severity, state, details, started_ms, updated_ms, cleared_ms FROM alarms WHERE id = $id", ("$id", id));
        return ReadAlarms(command, connection).FirstOrDefault();
    }

    /// <summary>The alarms a query returns; with <paramref name="connection"/>, each with its history.</summary>
    private static List<Alarm> ReadAlarms(SqliteCommand command, SqliteConnection? connection)
    {
        var alarms = new List<Alarm>();
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                alarms.Add(new Alarm(
                    reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4),
                    reader.IsDBNull(5) ? null : JsonNode.Parse(reader.GetString(5)), reader.GetInt64(6), reader.GetInt64(7), reader.IsDBNull(8) ? null : reader.GetInt64(8), []));
            }
        }

        if (connection is null)
        {
            return alarms;
        }

        return [.. alarms.Select(a =>
        {
            using var history = SqliteCommands.Command(connection, "SELECT state, at_ms, actor, comment FROM alarm_history WHERE alarm_id = $id ORDER BY step", ("$id", a.Id));
            using var reader = history.ExecuteReader();
            var steps = new List<AlarmStep>();
            while (reader.Read())
            {
                steps.Add(new AlarmStep(reader.GetString(0), reader.GetInt64(1), reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetString(3)));
            }

            return a with { History = steps };
        })];
    }

    private static TrellisError NotFound(string id) => new TrellisError.NotFound($"Alarm {id} cannot be found.");

    private readonly record struct Message(string Topic, ReadOnlyMemory<byte> Payload, string? ClientId, string? Principal, long AtMs);

    /// <summary>A model with its SQL and thing expression compiled.</summary>
    private sealed class Compiled
    {
        public Compiled(AlarmModel model)
        {
            Model = model;
            Sql = CompiledSql.Compile(model.Sql);
            Thing = CompiledSql.CompileTemplateExpression(model.ThingExpression ?? "clientid()");
        }

        public AlarmModel Model { get; }

        public CompiledSql Sql { get; }

        public Func<RuleContext, string?> Thing { get; }
    }

    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Warning, Message = "Alarm {Id} raised: model {Model}, thing {Thing}, severity {Severity}. Acknowledge or clear it with `trellis alarms`.")]
        public static partial void Raised(ILogger logger, string model, string thing, string severity, string id);

        [LoggerMessage(Level = LogLevel.Warning, Message = "Alarm evaluation of a message on {Topic} failed: {Reason}.")]
        public static partial void Failed(ILogger logger, string topic, string reason, Exception exception);

        [LoggerMessage(Level = LogLevel.Warning, Message = "The alarm queue is full ({Capacity} messages): messages are being skipped by the alarms (not by the broker or the rules). Make alarm models' FROM filters narrower.")]
        public static partial void Dropped(ILogger logger, int capacity);

        [LoggerMessage(Level = LogLevel.Warning, Message = "A notification for alarm {Id} failed: {Reason}.")]
        public static partial void NotifyFailed(ILogger logger, string id, string reason, Exception exception);
    }
}
