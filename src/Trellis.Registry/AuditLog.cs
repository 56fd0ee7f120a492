using Microsoft.Data.Sqlite;
using Trellis.Storage;

namespace Trellis.Registry;

/// <summary>One recorded management call.</summary>
public sealed record AuditEvent(long Sequence, long TimeMs, string? AccessKeyId, string Operation, string Method, string Path, string? Target, int Status, string? ErrorType);

/// <summary>What to list from the audit log; every field narrows the result.</summary>
public sealed record AuditQuery(long? SinceMs = null, long? UntilMs = null, string? Operation = null, string? AccessKeyId = null, string? Target = null, bool? Failed = null, bool NewestFirst = false);

/// <summary>
/// The audit log: every management call that changes something (when, which access key, which
/// operation on which target, and how it ended), in the registry database, newest last.
/// </summary>
public sealed class AuditLog(SqliteDatabase db)
{
    public void Record(AuditEvent e)
    {
        using var connection = db.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "INSERT INTO audit_log(time_ms, access_key, operation, method, path, target, status, error_type) VALUES ($t, $k, $o, $m, $p, $g, $s, $e)";
        command.Parameters.AddWithValue("$t", e.TimeMs);
        command.Parameters.AddWithValue("$k", (object?)e.AccessKeyId ?? DBNull.Value);
        command.Parameters.AddWithValue("$o", e.Operation);
        command.Parameters.AddWithValue("$m", e.Method);
        command.Parameters.AddWithValue("$p", e.Path);
        command.Parameters.AddWithValue("$g", (object?)e.Target ?? DBNull.Value);
        command.Parameters.AddWithValue("$s", e.Status);
        command.Parameters.AddWithValue("$e", (object?)e.ErrorType ?? DBNull.Value);
        command.ExecuteNonQuery();
    }

    /// <summary>
    /// Events matching <paramref name="query"/>, oldest first after sequence <paramref name="after"/>,
    /// or with <see cref="AuditQuery.NewestFirst"/> newest first before it (0: from the newest).
    /// </summary>
    public Page<AuditEvent> List(AuditQuery query, long after, int maxResults)
    {
        var size = Math.Clamp(maxResults, 1, 1000);
        using var connection = db.Open();
        using var command = connection.CreateCommand();
        var sql = "SELECT seq, time_ms, access_key, operation, method, path, target, status, error_type FROM audit_log WHERE "
            + (query.NewestFirst ? "seq < $after" : "seq > $after");
        command.Parameters.AddWithValue("$after", query.NewestFirst && after == 0 ? long.MaxValue : after);
        void Filter(string clause, string name, object? value)
        {
            if (value is not null)
            {
                sql += " AND " + clause;
                command.Parameters.AddWithValue(name, value);
            }
        }

        Filter("time_ms >= $since", "$since", query.SinceMs);
        Filter("time_ms <= $until", "$until", query.UntilMs);
        Filter("operation = $op", "$op", query.Operation);
        Filter("access_key = $key", "$key", query.AccessKeyId);
        Filter("target LIKE $target", "$target", query.Target is null ? null : "%" + query.Target + "%");
        if (query.Failed is { } failed)
        {
            sql += failed ? " AND status >= 400" : " AND status < 400";
        }

        command.CommandText = sql + (query.NewestFirst ? " ORDER BY seq DESC LIMIT $limit" : " ORDER BY seq LIMIT $limit");
        command.Parameters.AddWithValue("$limit", size + 1);
        var events = new List<AuditEvent>();
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                events.Add(new AuditEvent(reader.GetInt64(0), reader.GetInt64(1), Text(reader, 2), reader.GetString(3), reader.GetString(4), reader.GetString(5), Text(reader, 6), reader.GetInt32(7), Text(reader, 8)));
            }
        }

        string? next = null;
        if (events.Count > size)
        {
            events.RemoveAt(size);
            next = events[^1].Sequence.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        return new Page<AuditEvent>(events, next);
    }

    private static string? Text(SqliteDataReader reader, int column) => reader.IsDBNull(column) ? null : reader.GetString(column);
}
