using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Trellis.Core.Errors;
using Trellis.Core.Topics;
using Trellis.Rules.Sql;
using Trellis.Storage;

namespace Trellis.Rules;

/// <summary>
/// Topic rules: stored in the registry database, compiled once, and evaluated for every routed
/// message whose topic matches their FROM filter (or that is sent to <c>$aws/rules/{name}</c>).
/// The broker only queues a message here (<see cref="Wants"/> and <see cref="TryEnqueue"/>); one worker
/// evaluates the rules and runs their actions off the broker's threads, in arrival order.
/// </summary>
public sealed partial class RuleEngine
{
    public const string BasicIngestPrefix = "$aws/rules/";

    private static readonly HashSet<string> SqlVersions = new(StringComparer.Ordinal) { "2015-10-08", "2016-03-23", "beta" };

    private readonly SqliteDatabase _db;
    private readonly RuleTargets _targets;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Func<string, string> _arn;
    private readonly string _accountId;
    private readonly Lock _writeLock = new();
    private readonly Channel<Queued> _queue;
    private readonly int _capacity;
    private readonly Lock _roomLock = new();
    private TaskCompletionSource? _room;
    private CompiledRule[] _rules = [];
    private long _queued;
    private long _matched;
    private long _failedActions;
    private long _heldBack;

    public RuleEngine(SqliteDatabase db, RuleTargets targets, TimeProvider time, ILogger<RuleEngine> logger, Func<string, string> arn, string accountId, int queueCapacity = 100_000)
    {
        _db = db;
        _targets = targets;
        _time = time;
        _logger = logger;
        _arn = arn;
        _accountId = accountId;
        _capacity = queueCapacity;
        _queue = Channel.CreateUnbounded<Queued>(new UnboundedChannelOptions { SingleReader = true });
        Reload();
    }

    /// <summary>Messages that matched at least one rule.</summary>
    public long Matched => Interlocked.Read(ref _matched);

    /// <summary>Action runs that failed (each also went to the rule's error action, if it has one).</summary>
    public long FailedActions => Interlocked.Read(ref _failedActions);

    /// <summary>Client messages that found the queue full: their publisher waited (and its acknowledgement with it) until there was room.</summary>
    public long HeldBack => Interlocked.Read(ref _heldBack);

    /// <summary>Messages queued and not yet evaluated.</summary>
    public long QueueLength => Interlocked.Read(ref _queued);

    [GeneratedRegex("^[a-zA-Z0-9_]{1,128}$")]
    private static partial Regex RuleNamePattern();

    /// <summary>Cheap, on the broker's packet thread: does any enabled rule take this topic?</summary>
    public bool Wants(string topic)
    {
        var rules = Volatile.Read(ref _rules);
        if (rules.Length == 0)
        {
            return false;
        }

        if (topic.StartsWith(BasicIngestPrefix, StringComparison.Ordinal))
        {
            return true;
        }

        foreach (var rule in rules)
        {
            if (TopicMatcher.Matches(rule.Sql.TopicFilter, topic))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Queues a message for the rules; never blocks. When the queue holds its capacity and
    /// <paramref name="mayRefuse"/> is set (a client's publish), the message is refused instead:
    /// the caller then waits in <see cref="EnqueueAsync"/> and holds the client's acknowledgement,
    /// so a publisher faster than the rules is slowed down and nothing is dropped. Server messages
    /// (lifecycle events, rule republishes) are always taken: the worker itself produces some of
    /// them and must never wait for its own queue.
    /// </summary>
    public bool TryEnqueue(string topic, ReadOnlyMemory<byte> payload, string? clientId, string? principal, string? origin, bool mayRefuse)
    {
        if (mayRefuse && Interlocked.Read(ref _queued) >= _capacity)
        {
            if (Interlocked.Increment(ref _heldBack) % 10_000 == 1)
            {
                LogHeldBack(_logger, topic, HeldBack);
            }

            return false;
        }

        Write(new Queued(topic, payload, clientId, principal, origin, _time.GetUtcNow().ToUnixTimeMilliseconds()));
        return true;
    }

    /// <summary>Queues a message once the queue is below its capacity.</summary>
    public async ValueTask EnqueueAsync(string topic, ReadOnlyMemory<byte> payload, string? clientId, string? principal, string? origin, CancellationToken cancellationToken)
    {
        while (Interlocked.Read(ref _queued) >= _capacity)
        {
            Task room;
            lock (_roomLock)
            {
                _room ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                room = _room.Task;
            }

            // Checked again after registering: the worker may have drained everything in between.
            if (Interlocked.Read(ref _queued) < _capacity)
            {
                break;
            }

            await room.WaitAsync(cancellationToken);
        }

        Write(new Queued(topic, payload, clientId, principal, origin, _time.GetUtcNow().ToUnixTimeMilliseconds()));
    }

    private void Write(Queued message)
    {
        Interlocked.Increment(ref _queued);
        _queue.Writer.TryWrite(message);
    }

    /// <summary>The worker: evaluates queued messages until <paramref name="cancellationToken"/> ends it.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var message in _queue.Reader.ReadAllAsync(cancellationToken))
            {
                await ProcessAsync(message, cancellationToken);

                // Waiting publishers resume once a quarter of the queue is free, not at every message.
                if (Interlocked.Decrement(ref _queued) <= _capacity - Math.Max(1, _capacity / 4) && Volatile.Read(ref _room) is not null)
                {
                    TaskCompletionSource? room;
                    lock (_roomLock)
                    {
                        room = _room;
                        _room = null;
                    }

                    room?.TrySetResult();
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>Waits until everything queued so far has been processed (tests, shutdown).</summary>
    public async Task DrainAsync(TimeSpan timeout)
    {
        var deadline = _time.GetUtcNow() + timeout;
        while (Interlocked.Read(ref _queued) > 0 && _time.GetUtcNow() < deadline)
        {
            await Task.Delay(10);
        }
    }

    public Result<TopicRuleRecord> Create(string name, TopicRuleInput input)
    {
        if (!RuleNamePattern().IsMatch(name))
        {
            return new TrellisError.InvalidRequest($"Rule name '{name}' is invalid: use 1-128 characters from a-z A-Z 0-9 _");
        }

        var checkedPayload = Check(input);
        if (!checkedPayload.IsSuccess)
        {
            return checkedPayload.Error!;
        }

        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (Read(connection, name) is not null)
            {
                return new TrellisError.AlreadyExists($"The rule '{name}' already exists.", name, _arn("rule/" + name));
            }

            var p = checkedPayload.Value!;
            var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
            using var insert = Command(connection,
                "INSERT INTO topic_rules(name, sql, description, disabled, sql_version, actions, error_action, created_ms, updated_ms) VALUES ($n, $s, $d, $x, $v, $a, $e, $t, $t)",
                ("$n", name), ("$s", p.Sql), ("$d", p.Description), ("$x", p.Disabled ? 1 : 0), ("$v", p.SqlVersion), ("$a", p.Actions.ToJsonString()), ("$e", p.ErrorAction?.ToJsonString()), ("$t", now));
            insert.ExecuteNonQuery();
            Reload(connection);
            return Read(connection, name)!;
        }
    }

    public TrellisError? Replace(string name, TopicRuleInput input)
    {
        var checkedPayload = Check(input);
        if (!checkedPayload.IsSuccess)
        {
            return checkedPayload.Error;
        }

        var p = checkedPayload.Value!;
        return Update(name, "UPDATE topic_rules SET sql = $s, description = $d, disabled = $x, sql_version = $v, actions = $a, error_action = $e, updated_ms = $t WHERE name = $n",
            ("$s", p.Sql), ("$d", p.Description), ("$x", p.Disabled ? 1 : 0), ("$v", p.SqlVersion), ("$a", p.Actions.ToJsonString()), ("$e", p.ErrorAction?.ToJsonString()));
    }

    public TrellisError? SetDisabled(string name, bool disabled) =>
        Update(name, "UPDATE topic_rules SET disabled = $x, updated_ms = $t WHERE name = $n", ("$x", disabled ? 1 : 0));

    /// <summary>
    /// Deletes a rule, and with it what it left waiting in the outbox: a deleted rule's messages are
    /// not delivered (disable the rule instead to stop new matches and let the outbox drain). The
    /// count is logged.
    /// </summary>
    public TrellisError? Delete(string name)
    {
        if (Update(name, "DELETE FROM topic_rules WHERE name = $n") is { } error)
        {
            return error;
        }

        if (_targets.Outbox?.Purge(null, name) is > 0 and var discarded)
        {
            LogPendingDiscarded(_logger, name, discarded);
        }

        return null;
    }

    public Result<TopicRuleRecord> Get(string name)
    {
        using var connection = _db.Open();
        return Read(connection, name) is { } rule ? rule : NotFound(name);
    }

    /// <summary>Rules in name order, optionally only those whose FROM filter is <paramref name="topic"/> or only (dis)abled ones.</summary>
    public (List<TopicRuleRecord> Rules, string? NextToken) List(string? topic, bool? disabled, string? nextToken, int? maxResults)
    {
        using var connection = _db.Open();
        using var command = Command(connection, "SELECT name, sql, description, disabled, sql_version, actions, error_action, created_ms, updated_ms FROM topic_rules WHERE ($after IS NULL OR name > $after) ORDER BY name",
            ("$after", nextToken));
        var size = Math.Clamp(maxResults ?? 1000, 1, 10_000);
        var rules = new List<TopicRuleRecord>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            var rule = Map(reader);
            if ((topic is null || rule.TopicPattern == topic) && (disabled is null || rule.Disabled == disabled))
            {
                rules.Add(rule);
                if (rules.Count > size)
                {
                    break;
                }
            }
        }

        string? next = null;
        if (rules.Count > size)
        {
            rules.RemoveAt(size);
            next = rules[^1].Name;
        }

        return (rules, next);
    }

    private TrellisError? Update(string name, string sql, params (string, object?)[] parameters)
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (Read(connection, name) is null)
            {
                return NotFound(name);
            }

            using var update = Command(connection, sql, [("$n", name), ("$t", _time.GetUtcNow().ToUnixTimeMilliseconds()), .. parameters]);
            update.ExecuteNonQuery();
            Reload(connection);
            return null;
        }
    }

    private void Reload(SqliteConnection? connection = null)
    {
        var owned = connection is null ? _db.Open() : null;
        try
        {
            using var command = Command(connection ?? owned!, "SELECT name, sql, description, disabled, sql_version, actions, error_action, created_ms, updated_ms FROM topic_rules WHERE disabled = 0 ORDER BY name");
            using var reader = command.ExecuteReader();
            var compiled = new List<CompiledRule>();
            while (reader.Read())
            {
                var record = Map(reader);
                var rule = CompileRule(record);
                if (rule.IsSuccess)
                {
                    compiled.Add(rule.Value!);
                }
                else
                {
                    LogUncompilable(_logger, record.Name, rule.Error!.Message);
                }
            }

            Volatile.Write(ref _rules, [.. compiled]);
        }
        finally
        {
            owned?.Dispose();
        }
    }

    private Result<CompiledRule> CompileRule(TopicRuleRecord record)
    {
        CompiledSql sql;
        try
        {
            sql = CompiledSql.Compile(record.Sql);
        }
        catch (SqlSyntaxException e)
        {
            return new TrellisError.SqlParse(e.Message);
        }

        var actions = new List<IRuleAction>();
        for (var i = 0; i < record.Actions.Count; i++)
        {
            var action = RuleActions.Compile(record.Actions[i], _targets, $"actions[{i}]");
            if (!action.IsSuccess)
            {
                return action.Error!;
            }

            actions.Add(action.Value!);
        }

        IRuleAction? errorAction = null;
        if (record.ErrorAction is not null)
        {
            var compiled = RuleActions.Compile(record.ErrorAction, _targets, "errorAction");
            if (!compiled.IsSuccess)
            {
                return compiled.Error!;
            }

            errorAction = compiled.Value;
        }

        return new CompiledRule(record.Name, sql, [.. actions], errorAction);
    }

    /// <summary>Checks a rule completely (SQL, actions, error action) before anything is stored.</summary>
    private Result<RulePayload> Check(TopicRuleInput input)
    {
        if (string.IsNullOrWhiteSpace(input.Sql))
        {
            return new TrellisError.InvalidRequest("topicRulePayload.sql is required.");
        }

        var version = input.SqlVersion ?? "2016-03-23";
        if (!SqlVersions.Contains(version))
        {
            return new TrellisError.InvalidRequest($"awsIotSqlVersion must be 2016-03-23 (or 2015-10-08, beta), not '{version}'.");
        }

        var actions = new JsonArray([.. input.Actions.Select(a => a.DeepClone())]);
        var record = new TopicRuleRecord("check", string.Empty, input.Sql, string.Empty, input.Description, input.Disabled, version,
            actions, input.ErrorAction?.DeepClone() as JsonObject, 0, 0);
        var compiled = CompileRule(record);
        return compiled.IsSuccess
            ? new RulePayload(input.Sql, record.Description, record.Disabled, version, record.Actions, record.ErrorAction)
            : compiled.Error!;
    }

    private async Task ProcessAsync(Queued message, CancellationToken cancellationToken)
    {
        var rules = Volatile.Read(ref _rules);
        var basicIngest = message.Topic.StartsWith(BasicIngestPrefix, StringComparison.Ordinal);
        string? ingestRule = null;
        var topic = message.Topic;
        if (basicIngest)
        {
            // $aws/rules/{name}[/rest]: only that rule; topic() is the rest.
            var rest = message.Topic.AsSpan(BasicIngestPrefix.Length);
            var slash = rest.IndexOf('/');
            ingestRule = slash < 0 ? rest.ToString() : rest[..slash].ToString();
            topic = slash < 0 ? string.Empty : rest[(slash + 1)..].ToString();
        }

        RuleContext? context = null;
        foreach (var rule in rules)
        {
            if (basicIngest ? rule.Name != ingestRule : !TopicMatcher.Matches(rule.Sql.TopicFilter, topic))
            {
                continue;
            }

            // A rule does not see its own republishes: that loop would never end.
            if (message.Origin is { } origin && origin.Length == rule.Name.Length + 5 && origin.EndsWith(rule.Name, StringComparison.Ordinal) && origin.StartsWith("rule:", StringComparison.Ordinal))
            {
                continue;
            }

            context ??= new RuleContext
            {
                Topic = topic,
                Payload = RuleContext.ParsePayload(message.Payload),
                RawPayload = message.Payload,
                ClientId = message.ClientId,
                Principal = message.Principal,
                TimestampMs = message.TimestampMs,
                AccountId = _accountId,
            };
            await RunAsync(rule, context, message, cancellationToken);
        }
    }

    private async Task RunAsync(CompiledRule rule, RuleContext context, Queued message, CancellationToken cancellationToken)
    {
        object? output;
        try
        {
            output = rule.Sql.Evaluate(context);
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or FormatException or OverflowException)
        {
            await FailAsync(rule, context, message, [("Sql", rule.Name, e.Message)], cancellationToken);
            return;
        }

        if (output is null)
        {
            return;
        }

        Interlocked.Increment(ref _matched);
        var bytes = output as byte[] ?? Encoding.UTF8.GetBytes(((JsonNode)output).ToJsonString());
        List<(string, string, string)>? failures = null;
        foreach (var action in rule.Actions)
        {
            try
            {
                await action.ExecuteAsync(context, bytes, output as JsonNode, rule.Name, cancellationToken);
            }
            catch (Exception e) when (e is not OutOfMemoryException and not OperationCanceledException)
            {
                (failures ??= []).Add((action.Name, rule.Name, e.Message));
            }
        }

        if (failures is not null)
        {
            await FailAsync(rule, context, message, failures, cancellationToken);
        }
    }

    /// <summary>Counts, logs and reports failures to the rule's error action, in AWS's error message shape.</summary>
    private async Task FailAsync(CompiledRule rule, RuleContext context, Queued message, List<(string Action, string Resource, string Error)> failures, CancellationToken cancellationToken, bool countAgain = true)
    {
        if (countAgain)
        {
            Interlocked.Add(ref _failedActions, failures.Count);
            LogActionFailed(_logger, rule.Name, message.Topic, failures[0].Error);
        }

        if (rule.ErrorAction is null)
        {
            return;
        }

        var report = new JsonObject
        {
            ["ruleName"] = rule.Name,
            ["topic"] = message.Topic,
            ["cloudwatchTraceId"] = Guid.NewGuid().ToString(),
            ["clientId"] = message.ClientId ?? "n/a",
            ["base64OriginalPayload"] = Convert.ToBase64String(message.Payload.Span),
            ["failures"] = new JsonArray([.. failures.Select(f => (JsonNode)new JsonObject { ["failedAction"] = f.Action, ["failedResource"] = f.Resource, ["errorMessage"] = f.Error })]),
        };
        try
        {
            await rule.ErrorAction.ExecuteAsync(context, Encoding.UTF8.GetBytes(report.ToJsonString()), report, rule.Name, cancellationToken);
        }
        catch (Exception e) when (e is not OutOfMemoryException and not OperationCanceledException)
        {
            Interlocked.Increment(ref _failedActions);
            LogActionFailed(_logger, rule.Name + " (errorAction)", message.Topic, e.Message);
        }
    }

    /// <summary>An outbox message expired: the rule's errorAction gets AWS's failure report (if the rule still exists).</summary>
    public async Task ReportExpiredAsync(OutboxEntry entry, string reason)
    {
        Interlocked.Increment(ref _failedActions);
        LogActionFailed(_logger, entry.Rule, entry.Topic, reason);
        var rule = Volatile.Read(ref _rules).FirstOrDefault(r => r.Name == entry.Rule);
        if (rule?.ErrorAction is null)
        {
            return;
        }

        var message = new Queued(entry.Topic, entry.Payload, entry.ClientId, null, null, entry.CreatedMs);
        var context = new RuleContext { Topic = entry.Topic, Payload = RuleContext.ParsePayload(entry.Payload), RawPayload = entry.Payload, ClientId = entry.ClientId, TimestampMs = entry.CreatedMs, AccountId = _accountId };
        await FailAsync(rule, context, message, [(entry.Target.Split('|')[0] switch { "nats" => "NatsAction", "kafka" => "KafkaAction", _ => "HttpAction" }, entry.Address, reason)], CancellationToken.None, countAgain: false);
    }

    private TopicRuleRecord? Read(SqliteConnection connection, string name)
    {
        using var command = Command(connection, "SELECT name, sql, description, disabled, sql_version, actions, error_action, created_ms, updated_ms FROM topic_rules WHERE name = $n", ("$n", name));
        using var reader = command.ExecuteReader();
        return reader.Read() ? Map(reader) : null;
    }

    private TopicRuleRecord Map(SqliteDataReader reader)
    {
        var sql = reader.GetString(1);
        string pattern;
        try
        {
            pattern = CompiledSql.Compile(sql).TopicFilter;
        }
        catch (SqlSyntaxException)
        {
            pattern = string.Empty;
        }

        return new TopicRuleRecord(
            reader.GetString(0),
            _arn("rule/" + reader.GetString(0)),
            sql,
            pattern,
            reader.IsDBNull(2) ? null : reader.GetString(2),
            reader.GetInt64(3) != 0,
            reader.GetString(4),
            JsonNode.Parse(reader.GetString(5)) as JsonArray ?? [],
            reader.IsDBNull(6) ? null : JsonNode.Parse(reader.GetString(6)) as JsonObject,
            reader.GetInt64(7),
            reader.GetInt64(8));
    }

    private static TrellisError NotFound(string name) => new TrellisError.NotFound($"The rule '{name}' does not exist.");

    [LoggerMessage(EventId = 6001, Level = LogLevel.Warning, Message = "Rule {Rule} on {Topic}: {Error}. The rule's errorAction (if any) got the failure; other rules are not affected.")]
    private static partial void LogActionFailed(ILogger logger, string rule, string topic, string error);

    [LoggerMessage(EventId = 6002, Level = LogLevel.Warning, Message = "The rules queue is full: the publisher of a message on {Topic} waits for room, and its acknowledgement with it ({HeldBack} such waits so far). Rules are falling behind the message rate; fewer or cheaper rules, or more CPU, would keep publishers at full speed.")]
    private static partial void LogHeldBack(ILogger logger, string topic, long heldBack);

    [LoggerMessage(EventId = 6003, Level = LogLevel.Error, Message = "Rule {Rule} in the database does not compile and is skipped: {Error}. Replace it with ReplaceTopicRule.")]
    private static partial void LogUncompilable(ILogger logger, string rule, string error);

    [LoggerMessage(EventId = 6004, Level = LogLevel.Warning, Message = "Rule {Rule} was deleted: the {Count} message(s) it had waiting in the outbox were discarded.")]
    private static partial void LogPendingDiscarded(ILogger logger, string rule, long count);

    private sealed record CompiledRule(string Name, CompiledSql Sql, IRuleAction[] Actions, IRuleAction? ErrorAction);

    private sealed record RulePayload(string Sql, string? Description, bool Disabled, string SqlVersion, JsonArray Actions, JsonObject? ErrorAction);

    private readonly record struct Queued(string Topic, ReadOnlyMemory<byte> Payload, string? ClientId, string? Principal, string? Origin, long TimestampMs);
}
