using System.Collections.Concurrent;
using Microsoft.Data.Sqlite;
using Trellis.Storage;

namespace Trellis.Shadows;

/// <summary>
/// Shadows on disk: one SQLite database (<c>shadows.db</c>) with one row per shadow. Writes go
/// through a single group-commit writer: every write waiting when a transaction starts is committed
/// with it, and each caller's task completes only after the commit, so an accepted update is
/// durable (it survives kill -9) and thousands of updates per second cost a few transactions.
/// </summary>
public sealed class ShadowStore : IAsyncDisposable
{
    /// <summary>Forward-only migrations of shadows.db; append, never edit.</summary>
    public static IReadOnlyList<string> Migrations { get; } =
    [
        """
        CREATE TABLE shadows (
            thing TEXT NOT NULL,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            deleted INTEGER NOT NULL,
            document TEXT,
            updated_ms INTEGER NOT NULL,
            PRIMARY KEY (thing, name)
        ) WITHOUT ROWID;
        """,
    ];

    private const int MaxBatch = 4096;

    private readonly SqliteDatabase _db;
    // The writer and the checkpointer block in SQLite (commits, fsync): they get threads of their
    // own, so that they never hold thread-pool threads the sockets need (on 2 cores that starved
    // the pool and showed as 50-80 ms stalls in update-to-delta latency).
    private readonly BlockingCollection<PendingWrite> _writes = new(new ConcurrentQueue<PendingWrite>());
    private readonly Thread _writer;
    private readonly Thread _checkpointer;
    private readonly CancellationTokenSource _stopping = new();
    private long _commits;
    private long _written;
    private long _uncheckpointed;

    public ShadowStore(SqliteDatabase db)
    {
        _db = db;
        _writer = new Thread(WriteLoop) { IsBackground = true, Name = "shadow-writer" };
        _checkpointer = new Thread(CheckpointLoop) { IsBackground = true, Name = "shadow-checkpoint" };
        _writer.Start();
        _checkpointer.Start();
    }

    /// <summary>Transactions committed so far (each holds one or more writes).</summary>
    public long Commits => Interlocked.Read(ref _commits);

    /// <summary>Shadow writes committed so far.</summary>
    public long Written => Interlocked.Read(ref _written);

    public ShadowDocument? Load(ShadowKey key)
    {
        using var connection = _db.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT version, deleted, document FROM shadows WHERE thing = $thing AND name = $name";
        command.Parameters.AddWithValue("$thing", key.Thing);
        command.Parameters.AddWithValue("$name", key.Name);
        using var reader = command.ExecuteReader();
        if (!reader.Read())
        {
            return null;
        }

        return ShadowDocument.FromStorage(reader.IsDBNull(2) ? null : reader.GetString(2), reader.GetInt64(0), reader.GetInt64(1) != 0);
    }

    /// <summary>Every shadow that exists (not deleted), in thing and name order (the fleet index's rebuild).</summary>
    public IEnumerable<(ShadowKey Key, ShadowDocument Document)> All()
    {
        using var connection = _db.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT thing, name, version, document FROM shadows WHERE deleted = 0 ORDER BY thing, name";
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            yield return (new ShadowKey(reader.GetString(0), reader.GetString(1)), ShadowDocument.FromStorage(reader.IsDBNull(3) ? null : reader.GetString(3), reader.GetInt64(2), deleted: false));
        }
    }

    /// <summary>Named shadows of a thing that exist (not deleted), in name order, after <paramref name="after"/>.</summary>
    public List<string> ListNamed(string thing, string? after, int limit)
    {
        using var connection = _db.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT name FROM shadows WHERE thing = $thing AND name <> '' AND deleted = 0 AND name > $after ORDER BY name LIMIT $limit";
        command.Parameters.AddWithValue("$thing", thing);
        command.Parameters.AddWithValue("$after", after ?? string.Empty);
        command.Parameters.AddWithValue("$limit", limit);
        using var reader = command.ExecuteReader();
        var names = new List<string>();
        while (reader.Read())
        {
            names.Add(reader.GetString(0));
        }

        return names;
    }

    /// <summary>Writes a shadow; the task completes when the write is committed.</summary>
    public Task SaveAsync(ShadowKey key, ShadowDocument document, long updatedMs)
    {
        var pending = new PendingWrite(key, document.Version, !document.Exists, document.Exists ? document.ToStorageJson() : null, updatedMs);
        if (!_writes.TryAdd(pending))
        {
            throw new ObjectDisposedException(nameof(ShadowStore), "the shadow store is shut down");
        }

        return pending.Done.Task;
    }

    public async ValueTask DisposeAsync()
    {
        _writes.CompleteAdding();
        await Task.Run(() => _writer.Join());
        await _stopping.CancelAsync();
        await Task.Run(() => _checkpointer.Join());
        _stopping.Dispose();
        _writes.Dispose();
    }

    /// <summary>
    /// WAL checkpoints (which fsync the database) run here, every 250 ms, instead of inside the
    /// writer's commits, where they stalled every update waiting behind them. PASSIVE never blocks
    /// the writer.
    /// </summary>
    private void CheckpointLoop()
    {
        using var connection = _db.Open();
        using var checkpoint = connection.CreateCommand();
        checkpoint.CommandText = "PRAGMA wal_checkpoint(PASSIVE)";
        while (!_stopping.Token.WaitHandle.WaitOne(250))
        {
            if (Interlocked.Exchange(ref _uncheckpointed, 0) > 0)
            {
                checkpoint.ExecuteNonQuery();
            }
        }
    }

    /// <summary>Takes every write waiting, commits them in one transaction, then completes their callers.</summary>
    private void WriteLoop()
    {
        var batch = new List<PendingWrite>(MaxBatch);
        using var writer = new BatchWriter(_db);
        foreach (var first in _writes.GetConsumingEnumerable())
        {
            batch.Add(first);
            while (batch.Count < MaxBatch && _writes.TryTake(out var write))
            {
                batch.Add(write);
            }

            try
            {
                writer.Commit(batch);
                Interlocked.Increment(ref _commits);
                Interlocked.Increment(ref _uncheckpointed);
                Interlocked.Add(ref _written, batch.Count);
                foreach (var write in batch)
                {
                    write.Done.TrySetResult();
                }
            }
            catch (SqliteException e)
            {
                foreach (var write in batch)
                {
                    write.Done.TrySetException(e);
                }
            }

            batch.Clear();
        }
    }

    private sealed class BatchWriter : IDisposable
    {
        private readonly SqliteConnection _connection;
        private readonly SqliteCommand _upsert;
        private readonly SqliteParameter _thing, _name, _version, _deleted, _document, _updated;

        public BatchWriter(SqliteDatabase db)
        {
            _connection = db.Open();
            using (var pragma = _connection.CreateCommand())
            {
                // Checkpoints belong to CheckpointLoopAsync, not to this connection's commits.
                pragma.CommandText = "PRAGMA wal_autocheckpoint=0";
                pragma.ExecuteNonQuery();
            }

            _upsert = _connection.CreateCommand();
            _upsert.CommandText = """
                INSERT INTO shadows (thing, name, version, deleted, document, updated_ms) VALUES ($thing, $name, $version, $deleted, $document, $updated)
                ON CONFLICT (thing, name) DO UPDATE SET version = excluded.version, deleted = excluded.deleted, document = excluded.document, updated_ms = excluded.updated_ms
                """;
            _thing = _upsert.Parameters.Add("$thing", SqliteType.Text);
            _name = _upsert.Parameters.Add("$name", SqliteType.Text);
            _version = _upsert.Parameters.Add("$version", SqliteType.Integer);
            _deleted = _upsert.Parameters.Add("$deleted", SqliteType.Integer);
            _document = _upsert.Parameters.Add("$document", SqliteType.Text);
            _updated = _upsert.Parameters.Add("$updated", SqliteType.Integer);
        }

        public void Commit(List<PendingWrite> batch)
        {
            using var transaction = _connection.BeginTransaction();
            _upsert.Transaction = transaction;
            foreach (var write in batch)
            {
                _thing.Value = write.Key.Thing;
                _name.Value = write.Key.Name;
                _version.Value = write.Version;
                _deleted.Value = write.Deleted ? 1 : 0;
                _document.Value = (object?)write.Document ?? DBNull.Value;
                _updated.Value = write.UpdatedMs;
                _upsert.ExecuteNonQuery();
            }

            transaction.Commit();
        }

        public void Dispose()
        {
            _upsert.Dispose();
            _connection.Dispose();
        }
    }

    private sealed record PendingWrite(ShadowKey Key, long Version, bool Deleted, string? Document, long UpdatedMs)
    {
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
