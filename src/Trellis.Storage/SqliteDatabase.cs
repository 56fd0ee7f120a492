using Microsoft.Data.Sqlite;

namespace Trellis.Storage;

/// <summary>
/// The registry database in the data folder: WAL mode, forward-only migrations. Connections come
/// from Microsoft.Data.Sqlite's pool; each caller opens one per unit of work.
/// </summary>
public sealed class SqliteDatabase
{
    private static readonly object Configured = new();

    private readonly string _connectionString;
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<object, object> _configured = [];

    public SqliteDatabase(string path, IReadOnlyList<string> migrations)
    {
        Path = path;
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
        Migrate(migrations);
    }

    public string Path { get; }

    public SqliteConnection Open()
    {
        var connection = new SqliteConnection(_connectionString);
        connection.Open();

        // The pool hands back the same native connection again and again: its settings stick, so
        // they are applied once per native connection, not on every open (the broker opens one per CONNECT).
        if (connection.Handle is { } handle && !_configured.TryGetValue(handle, out _))
        {
            using var pragma = connection.CreateCommand();

            // WAL + synchronous=NORMAL: a committed transaction survives a process kill (kill -9);
            // busy_timeout lets concurrent writers wait instead of failing.
            pragma.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON;";
            pragma.ExecuteNonQuery();
            _configured.AddOrUpdate(handle, Configured);
        }

        return connection;
    }

    private void Migrate(IReadOnlyList<string> migrations)
    {
        using var connection = Open();
        using (var create = connection.CreateCommand())
        {
            create.CommandText = "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)";
            create.ExecuteNonQuery();
        }

        long current;
        using (var query = connection.CreateCommand())
        {
            query.CommandText = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations";
            current = (long)query.ExecuteScalar()!;
        }

        for (var version = (int)current + 1; version <= migrations.Count; version++)
        {
            using var transaction = connection.BeginTransaction();
            using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = migrations[version - 1];
            command.ExecuteNonQuery();
            command.CommandText = "INSERT INTO schema_migrations(version, applied_at) VALUES ($v, datetime('now'))";
            command.Parameters.AddWithValue("$v", version);
            command.ExecuteNonQuery();
            transaction.Commit();
        }
    }
}
