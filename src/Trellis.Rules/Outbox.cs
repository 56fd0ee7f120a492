using Trellis.Core.Errors;
using Trellis.Storage;

namespace Trellis.Rules;

/// <summary>One message waiting in the outbox for an external target.</summary>
public sealed record OutboxEntry(long Id, string Target, string Rule, string Address, string? Headers, byte[] Payload, string Topic, string? ClientId, long CreatedMs);

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

    public bool IsExpired(OutboxEntry entry) => _time.GetUtcNow().ToUnixTimeMilliseconds() - entry.CreatedMs > Options.MaxAge.TotalMilliseconds;
}
