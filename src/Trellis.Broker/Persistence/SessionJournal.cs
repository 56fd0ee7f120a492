using Microsoft.Data.Sqlite;
using Trellis.Broker.Internal;
using Trellis.Storage;

namespace Trellis.Broker.Persistence;

/// <summary>
/// The durable side of persistent sessions (<c>sessions.db</c>): each session's row and every QoS 1/2
/// message owed to it. All writes go through one writer thread that commits whatever is waiting in
/// one transaction (group commit); a caller that must not answer before its write is durable (a
/// publisher's PUBACK, a SUBACK, a CONNACK) waits for the task of the group its write joined. A
/// message acknowledged by its subscriber before its group was written is never written at all.
/// </summary>
internal sealed class SessionJournal : IDisposable
{
    private readonly SqliteDatabase _db;
    private readonly Action<Exception> _onFailure;
    private readonly Lock _lock = new();
    private readonly ManualResetEventSlim _work = new(false, spinCount: 0);
    private readonly Thread _writer;
    private readonly Thread _checkpointer;
    private readonly CancellationTokenSource _stopping = new();

    // Guarded by _lock: what the next transaction writes, in order, and where each message insert sits in it.
    private List<Op> _pending = new(256);
    private List<Op> _spare = new(256);
    private readonly Dictionary<long, int> _pendingInserts = [];
    private TaskCompletionSource _group = NewGroup();
    private Task? _writing;
    private bool _signaled;
    private bool _disposed;

    private long _lastSeq;
    private long _commits;
    private long _written;
    private long _uncheckpointed;

    public SessionJournal(SqliteDatabase db, long lastSeq, Action<Exception> onFailure)
    {
        _db = db;
        _lastSeq = lastSeq;
        _onFailure = onFailure;
        _writer = new Thread(WriteLoop) { IsBackground = true, Name = "session-journal" };
        _checkpointer = new Thread(CheckpointLoop) { IsBackground = true, Name = "session-checkpoint" };
        _writer.Start();
        _checkpointer.Start();
    }

    private enum OpKind : byte
    {
        /// <summary>A message insert cancelled by its acknowledgement before it was written.</summary>
        None,
        Insert,
        Delete,
        Upsert,
        DeleteSession,
    }

    /// <summary>Transactions committed so far.</summary>
    public long Commits => Interlocked.Read(ref _commits);

    /// <summary>Rows written or deleted so far (a message cancelled before its commit counts for nothing).</summary>
    public long Written => Interlocked.Read(ref _written);

    /// <summary>A new journal sequence number for a message about to be appended.</summary>
    public long NextSeq() => Interlocked.Increment(ref _lastSeq);

    /// <summary>Keeps a message owed to <paramref name="clientId"/>; the task completes once it is durable.</summary>
    public Task AppendAsync(string clientId, in Outgoing item)
    {
        lock (_lock)
        {
            _pendingInserts[item.JournalSeq] = _pending.Count;
            return AddAsync(new Op(OpKind.Insert, item.JournalSeq, clientId, item, null));
        }
    }

    /// <summary>The client has the message (or it can never be sent): its entry goes, or is never written.</summary>
    public void Remove(long seq)
    {
        if (seq <= 0)
        {
            return;
        }

        lock (_lock)
        {
            if (_pendingInserts.Remove(seq, out var index))
            {
                _pending[index] = default;
                return;
            }

            _ = AddAsync(new Op(OpKind.Delete, seq, null, default, null));
        }
    }

    /// <summary>Writes a persistent session's row (subscriptions, expiry, owner, disconnect time).</summary>
    public Task UpsertAsync(SessionRow row)
    {
        lock (_lock)
        {
            return AddAsync(new Op(OpKind.Upsert, 0, row.ClientId, default, row));
        }
    }

    /// <summary>Forgets a session and every message it was owed.</summary>
    public Task DeleteSessionAsync(string clientId)
    {
        lock (_lock)
        {
            return AddAsync(new Op(OpKind.DeleteSession, 0, clientId, default, null));
        }
    }

    /// <summary>Completes when everything appended so far is durable.</summary>
    public Task FlushAsync()
    {
        lock (_lock)
        {
            return _pending.Count > 0 ? _group.Task : _writing ?? Task.CompletedTask;
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            _work.Set();
        }

        _writer.Join();
        _stopping.Cancel();
        _checkpointer.Join();
        _stopping.Dispose();
        _work.Dispose();
    }

    private static TaskCompletionSource NewGroup() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private Task AddAsync(Op op)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _pending.Add(op);
        if (!_signaled)
        {
            _signaled = true;
            _work.Set();
        }

        return _group.Task;
    }

    private void WriteLoop()
    {
        using var writer = new BatchWriter(_db);
        while (true)
        {
            _work.Wait();
            List<Op> ops;
            TaskCompletionSource group;
            lock (_lock)
            {
                if (_pending.Count == 0)
                {
                    _signaled = false;
                    _work.Reset();
                    if (_disposed)
                    {
                        return;
                    }

                    continue;
                }

                ops = _pending;
                _pending = _spare;
                _pendingInserts.Clear();
                group = _group;
                _writing = group.Task;
                _group = NewGroup();
                _signaled = false;
                _work.Reset();
            }

            // A failed commit (disk full, folder not writable) is retried with everything that came
            // after it, in order, until it succeeds: waiters hold their acknowledgements meanwhile.
            List<TaskCompletionSource>? merged = null;
            while (true)
            {
                try
                {
                    var rows = writer.Commit(ops);
                    Interlocked.Increment(ref _commits);
                    Interlocked.Add(ref _written, rows);
                    Interlocked.Increment(ref _uncheckpointed);
                    group.TrySetResult();
                    merged?.ForEach(g => g.TrySetResult());
                    break;
                }
                catch (Exception e) when (e is SqliteException or IOException or InvalidOperationException)
                {
                    _onFailure(e);
                    if (_stopping.Token.WaitHandle.WaitOne(1000) || Volatile.Read(ref _disposed))
                    {
                        group.TrySetException(e);
                        merged?.ForEach(g => g.TrySetException(e));
                        _ = group.Task.Exception; // observed: the waiters see it
                        return;
                    }

                    lock (_lock)
                    {
                        ops.AddRange(_pending);
                        _pending.Clear();
                        _pendingInserts.Clear();
                        (merged ??= []).Add(_group);
                        _writing = _group.Task;
                        _group = NewGroup();
                    }
                }
            }

            ops.Clear();
            lock (_lock)
            {
                _spare = ops;
                _writing = null;
            }
        }
    }

    /// <summary>WAL checkpoints (which fsync) run here every 250 ms, never inside the writer's commits.</summary>
    private void CheckpointLoop()
    {
        using var connection = _db.Open();
        using var checkpoint = connection.CreateCommand();
        checkpoint.CommandText = "PRAGMA wal_checkpoint(PASSIVE)";
        while (!_stopping.Token.WaitHandle.WaitOne(250))
        {
            if (Interlocked.Exchange(ref _uncheckpointed, 0) > 0)
            {
                try
                {
                    checkpoint.ExecuteNonQuery();
                }
                catch (SqliteException e)
                {
                    _onFailure(e);
                }
            }
        }
    }

    private readonly record struct Op(OpKind Kind, long Seq, string? ClientId, Outgoing Item, SessionRow? Row);

    private sealed class BatchWriter : IDisposable
    {
        private readonly SqliteConnection _connection;
        private readonly SqliteCommand _insert;
        private readonly SqliteCommand _delete;
        private readonly SqliteCommand _upsert;
        private readonly SqliteCommand _deleteSession;
        private readonly SqliteParameter _iSeq, _iClient, _iTopic, _iQos, _iRetain, _iPayload, _iProps, _iSender, _iReceived, _iSubIds;
        private readonly SqliteParameter _dSeq;
        private readonly SqliteParameter _uClient, _uLevel, _uExpiry, _uDisconnected, _uSubscriptions, _uOwner;
        private readonly SqliteParameter _xClient;

        public BatchWriter(SqliteDatabase db)
        {
            _connection = db.Open();
            using (var pragma = _connection.CreateCommand())
            {
                // Checkpoints belong to the checkpoint thread; the WAL is cut back after them.
                pragma.CommandText = "PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=67108864;";
                pragma.ExecuteNonQuery();
            }

            _insert = _connection.CreateCommand();
            _insert.CommandText = """
                INSERT OR REPLACE INTO session_messages(seq, client_id, topic, qos, retain, payload, properties, sender, received_ms, subscription_ids)
                VALUES ($seq, $client, $topic, $qos, $retain, $payload, $props, $sender, $ts, $subs)
                """;
            _iSeq = _insert.Parameters.Add("$seq", SqliteType.Integer);
            _iClient = _insert.Parameters.Add("$client", SqliteType.Text);
            _iTopic = _insert.Parameters.Add("$topic", SqliteType.Text);
            _iQos = _insert.Parameters.Add("$qos", SqliteType.Integer);
            _iRetain = _insert.Parameters.Add("$retain", SqliteType.Integer);
            _iPayload = _insert.Parameters.Add("$payload", SqliteType.Blob);
            _iProps = _insert.Parameters.Add("$props", SqliteType.Text);
            _iSender = _insert.Parameters.Add("$sender", SqliteType.Text);
            _iReceived = _insert.Parameters.Add("$ts", SqliteType.Integer);
            _iSubIds = _insert.Parameters.Add("$subs", SqliteType.Text);

            _delete = _connection.CreateCommand();
            _delete.CommandText = "DELETE FROM session_messages WHERE seq = $seq";
            _dSeq = _delete.Parameters.Add("$seq", SqliteType.Integer);

            _upsert = _connection.CreateCommand();
            _upsert.CommandText = """
                INSERT INTO sessions(client_id, protocol_level, expiry_seconds, disconnected_ms, subscriptions, owner) VALUES ($c, $l, $e, $d, $s, $o)
                ON CONFLICT(client_id) DO UPDATE SET protocol_level=excluded.protocol_level, expiry_seconds=excluded.expiry_seconds,
                    disconnected_ms=excluded.disconnected_ms, subscriptions=excluded.subscriptions, owner=excluded.owner
                """;
            _uClient = _upsert.Parameters.Add("$c", SqliteType.Text);
            _uLevel = _upsert.Parameters.Add("$l", SqliteType.Integer);
            _uExpiry = _upsert.Parameters.Add("$e", SqliteType.Integer);
            _uDisconnected = _upsert.Parameters.Add("$d", SqliteType.Integer);
            _uSubscriptions = _upsert.Parameters.Add("$s", SqliteType.Text);
            _uOwner = _upsert.Parameters.Add("$o", SqliteType.Text);

            _deleteSession = _connection.CreateCommand();
            _deleteSession.CommandText = "DELETE FROM sessions WHERE client_id = $c; DELETE FROM session_messages WHERE client_id = $c;";
            _xClient = _deleteSession.Parameters.Add("$c", SqliteType.Text);
        }

        /// <summary>Writes <paramref name="ops"/> in one transaction. Returns the rows written or deleted.</summary>
        public int Commit(List<Op> ops)
        {
            var rows = 0;
            using var transaction = _connection.BeginTransaction();
            _insert.Transaction = _delete.Transaction = _upsert.Transaction = _deleteSession.Transaction = transaction;
            foreach (var op in ops)
            {
                switch (op.Kind)
                {
                    case OpKind.Insert:
                        var item = op.Item;
                        var message = item.Message;
                        _iSeq.Value = op.Seq;
                        _iClient.Value = op.ClientId;
                        _iTopic.Value = message.Topic;
                        _iQos.Value = (int)item.Qos;
                        _iRetain.Value = item.Retain ? 1 : 0;
                        _iPayload.Value = StoredMessages.PayloadArray(message.Payload);
                        _iProps.Value = StoredMessages.PropertiesJson(message) ?? (object)DBNull.Value;
                        _iSender.Value = message.SenderClientId;
                        _iReceived.Value = message.ReceivedAtMs;
                        _iSubIds.Value = item.SubscriptionIds is { } ids ? string.Join(',', ids) : DBNull.Value;
                        rows += _insert.ExecuteNonQuery();
                        break;
                    case OpKind.Delete:
                        _dSeq.Value = op.Seq;
                        rows += _delete.ExecuteNonQuery();
                        break;
                    case OpKind.Upsert:
                        var row = op.Row!;
                        _uClient.Value = row.ClientId;
                        _uLevel.Value = (int)row.ProtocolLevel;
                        _uExpiry.Value = (long)row.ExpirySeconds;
                        _uDisconnected.Value = row.DisconnectedAtMs;
                        _uSubscriptions.Value = row.SubscriptionsJson;
                        _uOwner.Value = (object?)row.Owner ?? DBNull.Value;
                        rows += _upsert.ExecuteNonQuery();
                        break;
                    case OpKind.DeleteSession:
                        _xClient.Value = op.ClientId;
                        rows += _deleteSession.ExecuteNonQuery();
                        break;
                }
            }

            transaction.Commit();
            return rows;
        }

        public void Dispose()
        {
            _insert.Dispose();
            _delete.Dispose();
            _upsert.Dispose();
            _deleteSession.Dispose();
            _connection.Dispose();
        }
    }
}
