using System.Text.Json;
using Microsoft.Data.Sqlite;
using Trellis.Broker.Internal;
using Trellis.Broker.Protocol;
using Trellis.Storage;

namespace Trellis.Broker.Persistence;

/// <summary>
/// Broker state in the registry database: retained messages (write-through), persistent sessions
/// (saved at shutdown) and a journal of messages queued to offline sessions (written before the
/// publisher is acknowledged, so a crash does not lose them).
/// </summary>
public sealed class BrokerStore(SqliteDatabase database)
{
    private long _journalSeq = -1;
    private readonly Lock _journalLock = new();

    internal void SaveRetained(MqttMessage message)
    {
        using var connection = database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = """
            INSERT INTO retained_messages(topic, qos, payload, properties, sender, received_ms)
            VALUES ($topic, $qos, $payload, $props, $sender, $ts)
            ON CONFLICT(topic) DO UPDATE SET qos=excluded.qos, payload=excluded.payload, properties=excluded.properties,
                sender=excluded.sender, received_ms=excluded.received_ms
            """;
        AddMessage(command, message, message.Qos);
        command.ExecuteNonQuery();
    }

    internal void DeleteRetained(string topic) => Execute("DELETE FROM retained_messages WHERE topic = $c", topic);

    internal List<MqttMessage> LoadRetained()
    {
        using var connection = database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT topic, qos, payload, properties, sender, received_ms FROM retained_messages";
        using var reader = command.ExecuteReader();
        var messages = new List<MqttMessage>();
        while (reader.Read())
        {
            messages.Add(ReadMessage(reader, 0, retain: true));
        }

        return messages;
    }

    /// <summary>Records a QoS 1/2 message for an offline session durably before the publisher is acknowledged.</summary>
    internal void Journal(Session session, MqttMessage message, byte qos)
    {
        using var connection = database.Open();
        lock (_journalLock)
        {
            if (_journalSeq < 0)
            {
                using var max = connection.CreateCommand();
                max.CommandText = "SELECT COALESCE(MAX(seq), 0) FROM session_messages";
                _journalSeq = (long)max.ExecuteScalar()!;
            }

            session.JournalSeq = ++_journalSeq;
        }

        using var command = connection.CreateCommand();
        command.CommandText = """
            INSERT INTO session_messages(client_id, seq, topic, qos, retain, payload, properties, sender, received_ms)
            VALUES ($client, $seq, $topic, $qos, 0, $payload, $props, $sender, $ts)
            """;
        command.Parameters.AddWithValue("$client", session.ClientId);
        command.Parameters.AddWithValue("$seq", session.JournalSeq);
        AddMessage(command, message, qos);
        command.ExecuteNonQuery();
    }

    /// <summary>Records a persistent session's subscriptions and expiry, so a crash does not lose the session.</summary>
    internal void UpsertSession(Session session)
    {
        using var connection = database.Open();
        using var command = connection.CreateCommand();
        AddSession(command, session);
        command.ExecuteNonQuery();
    }

    private static void AddSession(SqliteCommand command, Session session)
    {
        command.CommandText = """
            INSERT INTO sessions(client_id, protocol_level, expiry_seconds, disconnected_ms, subscriptions) VALUES ($c, $l, $e, $d, $s)
            ON CONFLICT(client_id) DO UPDATE SET protocol_level=excluded.protocol_level, expiry_seconds=excluded.expiry_seconds,
                disconnected_ms=excluded.disconnected_ms, subscriptions=excluded.subscriptions
            """;
        command.Parameters.AddWithValue("$c", session.ClientId);
        command.Parameters.AddWithValue("$l", (int)session.ProtocolLevel);
        command.Parameters.AddWithValue("$e", (long)session.ExpirySeconds);
        command.Parameters.AddWithValue("$d", session.DisconnectedAtMs);
        command.Parameters.AddWithValue("$s", JsonSerializer.Serialize(session.GetSubscriptions().Select(StoredSubscription.From).ToList(), StoreJsonContext.Default.ListStoredSubscription));
    }

    /// <summary>Forgets a session's journaled messages once they are all delivered and acknowledged.</summary>
    internal void ClearJournal(string clientId) => Execute("DELETE FROM session_messages WHERE client_id = $c", clientId);

    internal void DeleteSession(string clientId) =>
        Execute("DELETE FROM sessions WHERE client_id = $c; DELETE FROM session_messages WHERE client_id = $c", clientId);

    /// <summary>One statement (or a short script) with one key parameter, in its own implicit transaction.</summary>
    private void Execute(string sql, string key)
    {
        using var connection = database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Parameters.AddWithValue("$c", key);
        command.ExecuteNonQuery();
    }

    /// <summary>Replaces the stored sessions with <paramref name="sessions"/> and what they still owe their clients.</summary>
    internal int SaveSessions(IReadOnlyList<Session> sessions)
    {
        using var connection = database.Open();
        using var transaction = connection.BeginTransaction();
        using (var clear = connection.CreateCommand())
        {
            clear.Transaction = transaction;
            clear.CommandText = "DELETE FROM sessions; DELETE FROM session_messages;";
            clear.ExecuteNonQuery();
        }

        var messages = 0;
        long seq = 0;
        foreach (var session in sessions)
        {
            using (var insert = connection.CreateCommand())
            {
                insert.Transaction = transaction;
                AddSession(insert, session);
                insert.ExecuteNonQuery();
            }

            foreach (var pending in session.PendingMessages())
            {
                using var message = connection.CreateCommand();
                message.Transaction = transaction;
                message.CommandText = """
                    INSERT INTO session_messages(client_id, seq, topic, qos, retain, payload, properties, sender, received_ms)
                    VALUES ($client, $seq, $topic, $qos, $retain, $payload, $props, $sender, $ts)
                    """;
                message.Parameters.AddWithValue("$client", session.ClientId);
                message.Parameters.AddWithValue("$seq", ++seq);
                message.Parameters.AddWithValue("$retain", pending.Retain ? 1 : 0);
                AddMessage(message, pending.Message, pending.Qos);
                message.ExecuteNonQuery();
                messages++;
            }
        }

        transaction.Commit();
        lock (_journalLock)
        {
            _journalSeq = seq;
        }

        return messages;
    }

    internal List<StoredSession> LoadSessions()
    {
        using var connection = database.Open();
        var sessions = new Dictionary<string, StoredSession>(StringComparer.Ordinal);
        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT client_id, protocol_level, expiry_seconds, disconnected_ms, subscriptions FROM sessions";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                var subscriptions = JsonSerializer.Deserialize(reader.GetString(4), StoreJsonContext.Default.ListStoredSubscription) ?? [];
                sessions[reader.GetString(0)] = new StoredSession(reader.GetString(0), (byte)reader.GetInt32(1), (uint)reader.GetInt64(2), reader.GetInt64(3), subscriptions, []);
            }
        }

        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT client_id, topic, qos, payload, properties, sender, received_ms, retain FROM session_messages ORDER BY client_id, seq";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                if (sessions.TryGetValue(reader.GetString(0), out var session))
                {
                    var message = ReadMessage(reader, 1, retain: reader.GetInt32(7) == 1);
                    session.Messages.Add(new Outgoing(message, message.Qos, message.Retain, null));
                }
            }
        }

        return [.. sessions.Values];
    }

    private static void AddMessage(SqliteCommand command, MqttMessage message, byte qos)
    {
        command.Parameters.AddWithValue("$topic", message.Topic);
        command.Parameters.AddWithValue("$qos", (int)qos);
        command.Parameters.AddWithValue("$payload", message.Payload.ToArray());
        command.Parameters.AddWithValue("$props", message.Properties is null ? DBNull.Value : JsonSerializer.Serialize(StoredProperties.From(message.Properties), StoreJsonContext.Default.StoredProperties));
        command.Parameters.AddWithValue("$sender", message.SenderClientId);
        command.Parameters.AddWithValue("$ts", message.ReceivedAtMs);
    }

    // Columns from `first`: topic, qos, payload, properties, sender, received_ms.
    private static MqttMessage ReadMessage(SqliteDataReader reader, int first, bool retain) => new()
    {
        Topic = reader.GetString(first),
        Qos = (byte)reader.GetInt32(first + 1),
        Payload = (byte[])reader.GetValue(first + 2),
        Properties = reader.IsDBNull(first + 3) ? null : JsonSerializer.Deserialize(reader.GetString(first + 3), StoreJsonContext.Default.StoredProperties)?.ToProperties(),
        SenderClientId = reader.GetString(first + 4),
        ReceivedAtMs = reader.GetInt64(first + 5),
        Retain = retain,
    };
}
