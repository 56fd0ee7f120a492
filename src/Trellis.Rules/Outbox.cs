using Trellis.Core.Errors;
using Trellis.Storage;

namespace Trellis.Rules;

/// <summary>One message waiting in the outbox for an external target.</summary>
public sealed record OutboxEntry(long Id, string Target, string Rule, string Address, string? Headers, byte[] Payload, string Topic, string? ClientId, long CreatedMs);

/// <summary>
/// What waits for one target: how many messages, since when, for which rules, and how delivery
/// last went (the dispatcher's last error and when it tries next).
/// </summary>
public sealed record OutboxTargetState(string Target, string Display, long Depth, long? OldestMs, IReadOnlyList<string> Rules,
    string? LastError, long? LastFailureMs, long? NextAttemptMs, long Delivered);

/// <summary>Bounds of the outbox. The defaults keep a day of backlog per target, up to a million messages.</summary>
public sealed class OutboxOptions
{
    /// <summary>Most messages waiting per target; beyond it new ones fail at once and go to the rule's errorAction.</summary>
    public int MaxEntriesPerTarget { get; set; } = 1_000_000;

    /// <summary>How long a message may wait; older ones expire to the rule's errorAction.</summary>
    public TimeSpan MaxAge { get; set; } = TimeSpan.FromHours(24);

    /// <summary>Longest pause between delivery attempts while a target is down.</summary>
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromSeconds(30);
}

/// <summary>
/// The durable outbox of external rule actions (http, nats): every message is written to
/// <c>data/outbox.db</c> before the action counts as done, and delivered from there in order, one
/// target at a time, until the target takes it or it expires. A target that is down only makes its
/// own messages wait.
/// </summary>
public sealed class Outbox
{
    public static readonly IReadOnlyList<string> Migrations =
    [
        """
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            target TEXT NOT NULL,
            rule TEXT NOT NULL,
            address TEXT NOT NULL,
            headers TEXT,
            payload BLOB NOT NULL,
            topic TEXT NOT NULL,
            client_id TEXT,
            created_ms INTEGER NOT NULL
        );
        CREATE INDEX outbox_target ON outbox(target, id);
        """,
    ];

    private readonly SqliteDatabase _db;
    private readonly TimeProvider _time;
    private readonly Lock _writeLock = new();
    private readonly Dictionary<string, long> _counts = new(StringComparer.Ordinal);

    public Outbox(SqliteDatabase db, OutboxOptions options, TimeProvider time)
    {
        _db = db;
        Options = options;
        _time = time;
        using var connection = _db.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT target, COUNT(*) FROM outbox GROUP BY target";
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            _counts[reader.GetString(0)] = reader.GetInt64(1);
        }
    }

    public OutboxOptions Options { get; }

    /// <summary>Raised after a message was stored for a target (wakes its delivery loop).</summary>
    public event Action<string>? Enqueued;

    /// <summary>Targets with messages waiting (at start: the backlog left by the previous run).</summary>
    public IReadOnlyList<string> Targets()
    {
        lock (_writeLock)
        {
            return [.. _counts.Where(c => c.Value > 0).Select(c => c.Key)];
        }
    }

    public long Waiting(string target)
    {
        lock (_writeLock)
        {
            return _counts.GetValueOrDefault(target);
        }
    }

    /// <summary>Stores a message durably; fails when the target already has the maximum waiting.</summary>
    public TrellisError? Enqueue(string target, string rule, string address, string? headers, byte[] payload, string topic, string? clientId)
    {
        lock (_writeLock)
        {
            if (_counts.GetValueOrDefault(target) >= Options.MaxEntriesPerTarget)
            {
                return new TrellisError.LimitExceeded($"the outbox for {target} is full ({Options.MaxEntriesPerTarget} messages wait for it)");
            }

            using var connection = _db.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "INSERT INTO outbox(target, rule, address, headers, payload, topic, client_id, created_ms) VALUES ($t, $r, $a, $h, $p, $topic, $c, $ts)";
            command.Parameters.AddWithValue("$t", target);
            command.Parameters.AddWithValue("$r", rule);
            command.Parameters.AddWithValue("$a", address);
            command.Parameters.AddWithValue("$h", (object?)headers ?? DBNull.Value);
            command.Parameters.AddWithValue("$p", payload);
            command.Parameters.AddWithValue("$topic", topic);
            command.Parameters.AddWithValue("$c", (object?)clientId ?? DBNull.Value);
            command.Parameters.AddWithValue("$ts", _time.GetUtcNow().ToUnixTimeMilliseconds());
            command.ExecuteNonQuery();
            _counts[target] = _counts.GetValueOrDefault(target) + 1;
        }

        Enqueued?.Invoke(target);
        return null;
    }

    /// <summary>The oldest waiting messages of a target, in order.</summary>
    public List<OutboxEntry> Peek(string target, int count)
    {
        using var connection = _db.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT id, target, rule, address, headers, payload, topic, client_id, created_ms FROM outbox WHERE target = $t ORDER BY id LIMIT $n";
        command.Parameters.AddWithValue("$t", target);
        command.Parameters.AddWithValue("$n", count);
        using var reader = command.ExecuteReader();
        var entries = new List<OutboxEntry>();
        while (reader.Read())
        {
            entries.Add(new OutboxEntry(reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.IsDBNull(4) ? null : reader.GetString(4),
                (byte[])reader.GetValue(5), reader.GetString(6), reader.IsDBNull(7) ? null : reader.GetString(7), reader.GetInt64(8)));
        }

        return entries;
    }

    /// <summary>Removes a message once delivered or expired.</summary>
    public void Remove(OutboxEntry entry)
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "DELETE FROM outbox WHERE id = $id";
            command.Parameters.AddWithValue("$id", entry.Id);
            if (command.ExecuteNonQuery() > 0)
            {
                _counts[entry.Target] = Math.Max(0, _counts.GetValueOrDefault(entry.Target) - 1);
            }
        }
    }

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (string? Error, long? FailedMs, long? NextMs, long Delivered)> _delivery = new(StringComparer.Ordinal);

    /// <summary>Raised when an operator asks for a target to be tried now (its back-off is cut short).</summary>
    public event Action<string>? RetryRequested;

    /// <summary>The dispatcher's report: a batch failed with <paramref name="error"/>; the next attempt is at <paramref name="nextMs"/>.</summary>
    public void RecordFailure(string target, string error, long nextMs) =>
        _delivery.AddOrUpdate(target, _ => (error, _time.GetUtcNow().ToUnixTimeMilliseconds(), nextMs, 0),
            (_, d) => (error, _time.GetUtcNow().ToUnixTimeMilliseconds(), nextMs, d.Delivered));

    /// <summary>The dispatcher's report: <paramref name="count"/> messages were delivered (the last error stays on record until then).</summary>
    public void RecordDelivered(string target, int count) =>
        _delivery.AddOrUpdate(target, _ => (null, null, null, count), (_, d) => (null, d.FailedMs, null, d.Delivered + count));

    /// <summary>Every target with messages waiting, or with a delivery on record since start.</summary>
    public List<OutboxTargetState> States()
    {
        using var connection = _db.Open();
        var rows = new Dictionary<string, (long Depth, long? Oldest, List<string> Rules)>(StringComparer.Ordinal);
        using (var command = connection.CreateCommand())
        {
            // Per target and rule: the target's index makes this a walk over what waits, once.
            command.CommandText = "SELECT target, rule, COUNT(*), MIN(created_ms) FROM outbox GROUP BY target, rule";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                var target = reader.GetString(0);
                var row = rows.TryGetValue(target, out var r) ? r : (0, null, []);
                row.Rules.Add(reader.GetString(1));
                var oldest = reader.GetInt64(3);
                rows[target] = (row.Depth + reader.GetInt64(2), row.Oldest is { } o ? Math.Min(o, oldest) : oldest, row.Rules);
            }
        }

        return [.. rows.Keys.Union(_delivery.Keys).Order(StringComparer.Ordinal).Select(target =>
        {
            var row = rows.TryGetValue(target, out var r) ? r : (0, null, []);
            var delivery = _delivery.TryGetValue(target, out var d) ? d : default;
            return new OutboxTargetState(target, Display(target), row.Depth, row.Oldest, row.Rules, row.Depth == 0 ? null : delivery.Error,
                delivery.FailedMs, row.Depth == 0 ? null : delivery.NextMs, delivery.Delivered);
        })];
    }

    /// <summary>
    /// A target as people read it: its kind and where it goes (<c>http https://host</c>, <c>nats
    /// nats://host:4222 (JetStream)</c>, <c>kafka broker:9092</c>); a Kafka target's settings can
    /// hold a SASL password, which never leaves the server.
    /// </summary>
    public static string Display(string target)
    {
        var parts = target.Split('|');
        return parts[0] switch
        {
            "http" => "http " + parts[1],
            "nats" => $"nats {parts[1]}{(parts.Length > 2 && parts[2] == "js" ? " (JetStream)" : string.Empty)}",
            "kafka" => "kafka " + (System.Text.Json.Nodes.JsonNode.Parse(target[6..])?["bootstrap.servers"]?.GetValue<string>() ?? "?"),
            _ => target,
        };
    }

    /// <summary>The stored target a display name, or a stored target itself, stands for; null when nothing matches.</summary>
    public string? Resolve(string targetOrDisplay)
    {
        var known = States();
        return known.FirstOrDefault(t => t.Target == targetOrDisplay)?.Target ?? known.FirstOrDefault(t => t.Display == targetOrDisplay)?.Target;
    }

    /// <summary>Asks the dispatcher to try <paramref name="target"/> now instead of at the end of its back-off.</summary>
    public void RetryNow(string target) => RetryRequested?.Invoke(target);

    /// <summary>
    /// Discards what waits for a target (all of it, or one rule's), or everything a rule left
    /// (<paramref name="target"/> null); returns how many messages were discarded.
    /// </summary>
    public long Purge(string? target, string? rule)
    {
        ArgumentOutOfRangeException.ThrowIfEqual(target is null && rule is null, true);
        lock (_writeLock)
        {
            using var connection = _db.Open();
            using var transaction = connection.BeginTransaction();
            var counted = new List<(string Target, long Count)>();
            using (var count = connection.CreateCommand())
            {
                count.Transaction = transaction;
                count.CommandText = "SELECT target, COUNT(*) FROM outbox WHERE ($t IS NULL OR target = $t) AND ($r IS NULL OR rule = $r) GROUP BY target";
                count.Parameters.AddWithValue("$t", (object?)target ?? DBNull.Value);
                count.Parameters.AddWithValue("$r", (object?)rule ?? DBNull.Value);
                using var reader = count.ExecuteReader();
                while (reader.Read())
                {
                    counted.Add((reader.GetString(0), reader.GetInt64(1)));
                }
            }

            using (var delete = connection.CreateCommand())
            {
                delete.Transaction = transaction;
                delete.CommandText = "DELETE FROM outbox WHERE ($t IS NULL OR target = $t) AND ($r IS NULL OR rule = $r)";
                delete.Parameters.AddWithValue("$t", (object?)target ?? DBNull.Value);
                delete.Parameters.AddWithValue("$r", (object?)rule ?? DBNull.Value);
                delete.ExecuteNonQuery();
            }

            transaction.Commit();
            foreach (var (t, n) in counted)
            {
                _counts[t] = Math.Max(0, _counts.GetValueOrDefault(t) - n);
            }

            return counted.Sum(c => c.Count);
        }
    }

    public bool IsExpired(OutboxEntry entry) => _time.GetUtcNow().ToUnixTimeMilliseconds() - entry.CreatedMs > Options.MaxAge.TotalMilliseconds;
}
