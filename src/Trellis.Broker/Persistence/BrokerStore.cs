using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Trellis.Broker.Internal;
using Trellis.Broker.Protocol;
using Trellis.Storage;

namespace Trellis.Broker.Persistence;

/// <summary>
/// Broker state on disk: retained messages in the registry database (written through before the
/// publish is acknowledged), and persistent sessions with the QoS 1/2 messages they are owed in a
/// database of their own (<c>sessions.db</c>), written by the group-commit <see cref="SessionJournal"/>.
/// </summary>
public sealed class BrokerStore : IDisposable
{
    /// <summary>Forward-only migrations of sessions.db; append, never edit.</summary>
    public static IReadOnlyList<string> SessionMigrations { get; } =
    [
        """
        CREATE TABLE sessions (
            client_id TEXT PRIMARY KEY,
            protocol_level INTEGER NOT NULL,
            expiry_seconds INTEGER NOT NULL,
            disconnected_ms INTEGER NOT NULL,
            subscriptions TEXT NOT NULL,
            owner TEXT
        );
        CREATE TABLE session_messages (
            seq INTEGER PRIMARY KEY,
            client_id TEXT NOT NULL,
            topic TEXT NOT NULL,
            qos INTEGER NOT NULL,
            retain INTEGER NOT NULL,
            payload BLOB NOT NULL,
            properties TEXT,
            sender TEXT NOT NULL,
            received_ms INTEGER NOT NULL,
            subscription_ids TEXT
        );
        CREATE INDEX session_messages_client ON session_messages(client_id);
        """,
        """
        CREATE TABLE publish_streams (
            client_id TEXT PRIMARY KEY,
            stream TEXT NOT NULL,
            mark INTEGER NOT NULL,
            seen BLOB NOT NULL
        );
        """,
    ];

    private readonly SqliteDatabase _registry;
    private readonly SqliteDatabase _sessions;
    private readonly ILogger _logger;
    private SessionJournal? _journal;

    public BrokerStore(SqliteDatabase registry, SqliteDatabase sessions, ILogger<BrokerStore>? logger = null)
    {
        _registry = registry;
        _sessions = sessions;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        MoveSessionsFromRegistry();
    }

    /// <summary>The session writer, started by <see cref="LoadSessions"/> once the highest sequence in use is known.</summary>
    internal SessionJournal Journal => _journal ?? throw new InvalidOperationException("LoadSessions must run before the journal is used");

    internal SessionJournal? JournalIfStarted => _journal;

    internal void SaveRetained(MqttMessage message)
    {
        using var connection = _registry.Open();
        using var command = connection.CreateCommand();
        command.CommandText = """
            INSERT INTO retained_messages(topic, qos, payload, properties, sender, received_ms)
            VALUES ($topic, $qos, $payload, $props, $sender, $ts)
            ON CONFLICT(topic) DO UPDATE SET qos=excluded.qos, payload=excluded.payload, properties=excluded.properties,
                sender=excluded.sender, received_ms=excluded.received_ms
            """;
        command.Parameters.AddWithValue("$topic", message.Topic);
        command.Parameters.AddWithValue("$qos", (int)message.Qos);
        command.Parameters.AddWithValue("$payload", StoredMessages.PayloadArray(message.Payload));
        command.Parameters.AddWithValue("$props", (object?)StoredMessages.PropertiesJson(message) ?? DBNull.Value);
        command.Parameters.AddWithValue("$sender", message.SenderClientId);
        command.Parameters.AddWithValue("$ts", message.ReceivedAtMs);
        command.ExecuteNonQuery();
    }

    internal void DeleteRetained(string topic)
    {
        using var connection = _registry.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "DELETE FROM retained_messages WHERE topic = $c";
        command.Parameters.AddWithValue("$c", topic);
        command.ExecuteNonQuery();
    }

    internal List<MqttMessage> LoadRetained()
    {
        using var connection = _registry.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT topic, qos, payload, properties, sender, received_ms FROM retained_messages";
        using var reader = command.ExecuteReader();
        var messages = new List<MqttMessage>();
        while (reader.Read())
        {
            messages.Add(StoredMessages.Read(reader, 0, retain: true));
        }

        return messages;
    }

    /// <summary>A snapshot of a session's row for the journal.</summary>
    internal static SessionRow RowOf(Session session) => new(
        session.ClientId,
        session.ProtocolLevel,
        session.ExpirySeconds,
        session.DisconnectedAtMs,
        JsonSerializer.Serialize(session.GetSubscriptions().Select(StoredSubscription.From).ToList(), StoreJsonContext.Default.ListStoredSubscription),
        session.Owner);

    /// <summary>Reads every stored session with the messages it is owed, then starts the journal writer.</summary>
    internal List<StoredSession> LoadSessions()
    {
        using var connection = _sessions.Open();
        var sessions = new Dictionary<string, StoredSession>(StringComparer.Ordinal);
        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT client_id, protocol_level, expiry_seconds, disconnected_ms, subscriptions, owner FROM sessions";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                var subscriptions = JsonSerializer.Deserialize(reader.GetString(4), StoreJsonContext.Default.ListStoredSubscription) ?? [];
                sessions[reader.GetString(0)] = new StoredSession(
                    reader.GetString(0), (byte)reader.GetInt32(1), (uint)reader.GetInt64(2), reader.GetInt64(3), reader.IsDBNull(5) ? null : reader.GetString(5), subscriptions, []);
            }
        }

        long lastSeq = 0;
        var orphans = 0;
        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT client_id, topic, qos, payload, properties, sender, received_ms, retain, seq, subscription_ids FROM session_messages ORDER BY seq";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                var seq = reader.GetInt64(8);
                lastSeq = Math.Max(lastSeq, seq);
                if (sessions.TryGetValue(reader.GetString(0), out var session))
                {
                    var message = StoredMessages.Read(reader, 1, retain: reader.GetInt32(7) == 1);
                    var ids = reader.IsDBNull(9) ? null : reader.GetString(9).Split(',').Select(s => uint.Parse(s, CultureInfo.InvariantCulture)).ToArray();
                    session.Messages.Add(new Outgoing(message, message.Qos, message.Retain, ids, seq));
                }
                else
                {
                    orphans++;
                }
            }
        }

        if (orphans > 0)
        {
            using var command = connection.CreateCommand();
            command.CommandText = "DELETE FROM session_messages WHERE client_id NOT IN (SELECT client_id FROM sessions)";
            command.ExecuteNonQuery();
        }

        _journal ??= new SessionJournal(_sessions, lastSeq, e => _logger.JournalFailed(e.GetType().Name + ": " + e.Message));
        return [.. sessions.Values];
    }

    public void Dispose() => _journal?.Dispose();

    /// <summary>The idempotent-publish windows (see <see cref="PublishSequences"/>) saved at the last shutdown.</summary>
    internal List<(string ClientId, string Stream, long Mark, byte[] Seen)> LoadPublishStreams()
    {
        using var connection = _sessions.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT client_id, stream, mark, seen FROM publish_streams";
        using var reader = command.ExecuteReader();
        var list = new List<(string, string, long, byte[])>();
        while (reader.Read())
        {
            list.Add((reader.GetString(0), reader.GetString(1), reader.GetInt64(2), (byte[])reader[3]));
        }

        return list;
    }

    internal void SavePublishStreams(IEnumerable<(string ClientId, string Stream, long Mark, byte[] Seen)> windows)
    {
        using var connection = _sessions.Open();
        using var transaction = connection.BeginTransaction();
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "INSERT OR REPLACE INTO publish_streams (client_id, stream, mark, seen) VALUES ($c, $s, $m, $b)";
        var c = command.Parameters.Add("$c", Microsoft.Data.Sqlite.SqliteType.Text);
        var st = command.Parameters.Add("$s", Microsoft.Data.Sqlite.SqliteType.Text);
        var m = command.Parameters.Add("$m", Microsoft.Data.Sqlite.SqliteType.Integer);
        var b = command.Parameters.Add("$b", Microsoft.Data.Sqlite.SqliteType.Blob);
        foreach (var w in windows)
        {
            (c.Value, st.Value, m.Value, b.Value) = (w.ClientId, w.Stream, w.Mark, w.Seen);
            command.ExecuteNonQuery();
        }

        transaction.Commit();
    }

    /// <summary>
    /// Before sessions.db existed, sessions lived in the registry database: a data folder from then
    /// has them moved over once, in one transaction, so an upgrade keeps its sessions and their messages.
    /// </summary>
    private void MoveSessionsFromRegistry()
    {
        using var connection = _sessions.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "ATTACH DATABASE $path AS registry";
        command.Parameters.AddWithValue("$path", _registry.Path);
        command.ExecuteNonQuery();
        try
        {
            command.Parameters.Clear();
            command.CommandText = "SELECT (SELECT COUNT(*) FROM registry.sessions) + (SELECT COUNT(*) FROM registry.session_messages)";
            if ((long)command.ExecuteScalar()! == 0)
            {
                return;
            }

            using var transaction = connection.BeginTransaction();
            command.Transaction = transaction;
            command.CommandText = """
                INSERT OR IGNORE INTO sessions(client_id, protocol_level, expiry_seconds, disconnected_ms, subscriptions, owner)
                    SELECT client_id, protocol_level, expiry_seconds, disconnected_ms, subscriptions, NULL FROM registry.sessions;
                INSERT INTO session_messages(seq, client_id, topic, qos, retain, payload, properties, sender, received_ms, subscription_ids)
                    SELECT (SELECT COALESCE(MAX(seq), 0) FROM session_messages) + ROW_NUMBER() OVER (ORDER BY client_id, seq),
                        client_id, topic, qos, retain, payload, properties, sender, received_ms, NULL FROM registry.session_messages;
                DELETE FROM registry.sessions;
                DELETE FROM registry.session_messages;
                """;
            command.ExecuteNonQuery();
            transaction.Commit();
        }
        finally
        {
            command.Transaction = null;
            command.CommandText = "DETACH DATABASE registry";
            command.ExecuteNonQuery();
        }
    }
}
