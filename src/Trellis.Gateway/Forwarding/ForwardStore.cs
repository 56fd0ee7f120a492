using Microsoft.Data.Sqlite;

namespace Trellis.Gateway.Forwarding;

/// <summary>What the queue does when it holds <see cref="ForwardStoreOptions.MaxBytes"/>.</summary>
public enum QueueFullPolicy
{
    /// <summary>The oldest messages are deleted (and counted) to make room: the newest data wins.</summary>
    DropOldest,

    /// <summary>New messages wait for room: a leaf's PUBACK is held back, so the leaf slows down.</summary>
    Hold,
}

/// <summary>Settings of the gateway's on-disk queue.</summary>
public sealed class ForwardStoreOptions
{
    /// <summary>Bytes of topics and payloads the queue may hold (default 1 GiB).</summary>
    public long MaxBytes { get; init; } = 1L << 30;

    public QueueFullPolicy WhenFull { get; init; } = QueueFullPolicy.DropOldest;

    /// <summary>
    /// True (the default): every commit is fsynced (SQLite <c>synchronous=FULL</c>), so an
    /// acknowledged message survives a power cut. False: <c>synchronous=NORMAL</c>, which survives
    /// a crash of the process (kill -9) but may lose the last commits in a power cut.
    /// </summary>
    public bool FsyncEveryCommit { get; init; } = true;
}

/// <summary>One queued message. <see cref="Seq"/> orders the queue and never repeats.</summary>
public sealed record QueuedMessage(long Seq, string Topic, byte[] Payload, string Leaf, long ReceivedMs);

/// <summary>
/// The gateway's store-and-forward queue (<c>queue.db</c>, SQLite in WAL mode). Leaves' messages
/// are appended by one writer thread that commits whatever is waiting in one transaction (group
/// commit); <see cref="AppendAsync"/> completes once its message is durable, and only then is the
/// leaf acknowledged. The forwarder reads in sequence order and removes a message once upstream
/// acknowledged it. Sequence numbers come from SQLite's AUTOINCREMENT and are never reused, even
/// after the queue empties; with the queue's <see cref="StreamId"/> (made once per data folder)
/// they let upstream recognise a message it already has.
/// </summary>
public sealed class ForwardStore : IDisposable
{
    private const string Schema = """
        CREATE TABLE IF NOT EXISTS messages (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            topic TEXT NOT NULL,
            payload BLOB NOT NULL,
            leaf TEXT NOT NULL,
            received_ms INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS windows (key TEXT PRIMARY KEY, state TEXT NOT NULL);
        """;

    private readonly ForwardStoreOptions _options;
    private readonly SqliteConnection _writer;
    private readonly string _readString;
    private readonly Lock _lock = new();
    private readonly Thread _thread;
    private readonly ManualResetEventSlim _work = new(false, spinCount: 0);
    private List<Pending> _appends = [];
    private Dictionary<string, string> _windows = new(StringComparer.Ordinal);
    private string[] _windowKeys = [];
    private List<long> _removes = [];
    private TaskCompletionSource _room = NewSignal();
    private TaskCompletionSource _appended = NewSignal();
    private long _bytes;
    private long _pendingBytes;
    private long _count;
    private long _lastSeq;
    private long _dropped;
    private long _commits;
    private bool _stopping;

    public ForwardStore(string path, ForwardStoreOptions? options = null)
    {
        _options = options ?? new ForwardStoreOptions();
        if (!File.Exists(path) && !OperatingSystem.IsWindows())
        {
            // Private to the gateway's user; SQLite gives its -wal and -shm files the same mode.
            using var created = new FileStream(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite });
        }

        var builder = new SqliteConnectionStringBuilder { DataSource = path, Pooling = false };
        _writer = new SqliteConnection(builder.ToString());
        _writer.Open();
        Execute(_writer, $"PRAGMA journal_mode=WAL; PRAGMA synchronous={(_options.FsyncEveryCommit ? "FULL" : "NORMAL")}; {Schema}");
        _readString = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadOnly }.ToString();

        StreamId = Scalar(_writer, "SELECT value FROM meta WHERE key = 'stream'") as string ?? NewStream();
        _lastSeq = Scalar(_writer, "SELECT seq FROM sqlite_sequence WHERE name = 'messages'") is long last ? last : 0;
        _count = (long)Scalar(_writer, "SELECT COUNT(*) FROM messages")!;
        _bytes = (long)Scalar(_writer, "SELECT COALESCE(SUM(length(topic) + length(payload)), 0) FROM messages")!;
        LoadWindows();
        _thread = new Thread(WriteLoop) { IsBackground = true, Name = "gateway-queue" };
        _thread.Start();
    }

    /// <summary>This queue's identity: new when the data folder is new, so upstream starts a new sequence with it.</summary>
    public string StreamId { get; }

    /// <summary>Messages held now.</summary>
    public long Count => Interlocked.Read(ref _count);

    /// <summary>Bytes of topics and payloads held now.</summary>
    public long Bytes => Interlocked.Read(ref _bytes);

    /// <summary>Messages deleted unsent to make room (policy drop-oldest), since start.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Transactions committed since start.</summary>
    public long Commits => Interlocked.Read(ref _commits);

    /// <summary>The highest sequence number given out so far.</summary>
    public long LastSeq => Interlocked.Read(ref _lastSeq);

    /// <summary>
    /// Appends a message; completes once it is on disk (fsynced unless configured otherwise). With
    /// policy <see cref="QueueFullPolicy.Hold"/> it first waits for room.
    /// </summary>
    public async Task AppendAsync(string topic, byte[] payload, string leaf, long receivedMs, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(topic);
        ArgumentNullException.ThrowIfNull(payload);
        long size = topic.Length + payload.Length;
        if (size > _options.MaxBytes)
        {
            throw new QueueFullException($"a message of {size} bytes is larger than the whole queue ({_options.MaxBytes} bytes)");
        }

        Task durable;
        while (true)
        {
            Task room;
            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_stopping, this);
                if (_options.WhenFull == QueueFullPolicy.DropOldest || _bytes + _pendingBytes + size <= _options.MaxBytes)
                {
                    var pending = new Pending(topic, payload, leaf, receivedMs, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
                    _appends.Add(pending);
                    _pendingBytes += size;
                    durable = pending.Done.Task;
                    break;
                }

                room = _room.Task;
            }

            await room.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        _work.Set();
        await durable.ConfigureAwait(false);
    }

    /// <summary>
    /// Changes the state of an open window (a local rule's aggregate) in the same group commit as
    /// the messages around it: <paramref name="update"/> gets the old state (null for a new window)
    /// and returns the new one; it runs on the writer thread, in order with every other operation.
    /// </summary>
    public Task UpdateWindowAsync(string key, Func<string?, string> update) =>
        EnqueueAsync(new Pending(string.Empty, [], string.Empty, 0, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)) { WindowKey = key, Update = update });

    /// <summary>
    /// Closes a window: its state is deleted and, in the same transaction, the message
    /// <paramref name="close"/> makes of it (if any) is appended to the queue.
    /// </summary>
    public Task CloseWindowAsync(string key, Func<string, (string Topic, byte[] Payload, string Leaf)?> close) =>
        EnqueueAsync(new Pending(string.Empty, [], string.Empty, 0, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)) { WindowKey = key, Close = close });

    /// <summary>The keys of the windows open now.</summary>
    public IReadOnlyList<string> WindowKeys()
    {
        lock (_lock)
        {
            return _windowKeys;
        }
    }

    /// <summary>Up to <paramref name="max"/> messages after <paramref name="afterSeq"/>, in order.</summary>
    public List<QueuedMessage> ReadAfter(long afterSeq, int max)
    {
        using var connection = new SqliteConnection(_readString);
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT seq, topic, payload, leaf, received_ms FROM messages WHERE seq > $after ORDER BY seq LIMIT $max";
        command.Parameters.AddWithValue("$after", afterSeq);
        command.Parameters.AddWithValue("$max", max);
        using var reader = command.ExecuteReader();
        var list = new List<QueuedMessage>();
        while (reader.Read())
        {
            list.Add(new QueuedMessage(reader.GetInt64(0), reader.GetString(1), (byte[])reader[2], reader.GetString(3), reader.GetInt64(4)));
        }

        return list;
    }

    private Task EnqueueAsync(Pending pending)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_stopping, this);
            _appends.Add(pending);
        }

        _work.Set();
        return pending.Done.Task;
    }

    /// <summary>A task that completes when messages after the current ones have been committed.</summary>
    public Task AppendedAsync()
    {
        lock (_lock)
        {
            return _appended.Task;
        }
    }

    /// <summary>Upstream has the message: it is deleted in the next commit.</summary>
    public void Remove(long seq)
    {
        lock (_lock)
        {
            _removes.Add(seq);
        }

        _work.Set();
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_stopping)
            {
                return;
            }

            _stopping = true;
        }

        _work.Set();
        _thread.Join();
        _writer.Dispose();
        _work.Dispose();
    }

    private void WriteLoop()
    {
        var appends = new List<Pending>();
        var removes = new List<long>();
        while (true)
        {
            _work.Wait();
            bool stopping;
            lock (_lock)
            {
                _work.Reset();
                (appends, _appends) = (_appends, appends);
                (removes, _removes) = (_removes, removes);
                stopping = _stopping;
            }

            if (appends.Count > 0 || removes.Count > 0)
            {
                Commit(appends, removes);
                appends.Clear();
                removes.Clear();
            }

            if (stopping)
            {
                lock (_lock)
                {
                    foreach (var late in _appends)
                    {
                        late.Done.TrySetException(new ObjectDisposedException(nameof(ForwardStore)));
                    }
                }

                return;
            }
        }
    }

    private void Commit(List<Pending> appends, List<long> removes)
    {
        Dictionary<Pending, Exception>? failed = null;
        long added = 0, inserted = 0, removed = 0, removedCount = 0, dropped = 0, droppedBytes = 0, lastSeq = 0;
        try
        {
            using var transaction = _writer.BeginTransaction();
            (removedCount, removed) = Delete(transaction, removes);
            if (appends.Count > 0)
            {
                using var insert = _writer.CreateCommand();
                insert.Transaction = transaction;
                insert.CommandText = "INSERT INTO messages (topic, payload, leaf, received_ms) VALUES ($t, $p, $l, $r) RETURNING seq";
                var t = insert.Parameters.Add("$t", SqliteType.Text);
                var p = insert.Parameters.Add("$p", SqliteType.Blob);
                var l = insert.Parameters.Add("$l", SqliteType.Text);
                var r = insert.Parameters.Add("$r", SqliteType.Integer);
                void Insert(string topic, byte[] payload, string leaf, long receivedMs)
                {
                    t.Value = topic;
                    p.Value = payload;
                    l.Value = leaf;
                    r.Value = receivedMs;
                    lastSeq = (long)insert.ExecuteScalar()!;
                    added += topic.Length + payload.Length;
                    inserted++;
                }

                var changed = new HashSet<string>(StringComparer.Ordinal);
                foreach (var a in appends)
                {
                    if (a.Update is { } update)
                    {
                        try
                        {
                            _windows[a.WindowKey!] = update(_windows.GetValueOrDefault(a.WindowKey!));
                            changed.Add(a.WindowKey!);
                        }
                        catch (Exception e) when (e is not OutOfMemoryException)
                        {
                            (failed ??= []).Add(a, e); // a caller's mistake fails its own operation only
                        }
                    }
                    else if (a.Close is { } close)
                    {
                        if (_windows.TryGetValue(a.WindowKey!, out var state))
                        {
                            try
                            {
                                var output = close(state);
                                _windows.Remove(a.WindowKey!);
                                changed.Add(a.WindowKey!);
                                if (output is { } message)
                                {
                                    Insert(message.Topic, message.Payload, message.Leaf, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
                                }
                            }
                            catch (Exception e) when (e is not OutOfMemoryException and not SqliteException)
                            {
                                (failed ??= []).Add(a, e);
                            }
                        }
                    }
                    else
                    {
                        Insert(a.Topic, a.Payload, a.Leaf, a.ReceivedMs);
                    }
                }

                SaveWindows(transaction, changed);

                // Policy drop-oldest: delete from the front until the queue fits again.
                var over = Interlocked.Read(ref _bytes) - removed + added - _options.MaxBytes;
                if (over > 0)
                {
                    using var oldest = _writer.CreateCommand();
                    oldest.Transaction = transaction;
                    oldest.CommandText = "SELECT seq, length(topic) + length(payload) FROM messages ORDER BY seq";
                    var victims = new List<long>();
                    using (var reader = oldest.ExecuteReader())
                    {
                        while (over > 0 && reader.Read())
                        {
                            victims.Add(reader.GetInt64(0));
                            over -= reader.GetInt64(1);
                        }
                    }

                    (dropped, droppedBytes) = Delete(transaction, victims);
                }
            }

            transaction.Commit();
        }
        catch (SqliteException e)
        {
            // The disk is full or failing: nothing of this group is acknowledged; removals are retried.
            LoadWindows();
            lock (_lock)
            {
                _pendingBytes -= appends.Sum(a => (long)(a.Topic.Length + a.Payload.Length));
                _removes.AddRange(removes);
            }

            foreach (var a in appends)
            {
                a.Done.TrySetException(new QueueFullException("the queue could not be written: " + e.Message, e));
            }

            return;
        }

        Interlocked.Increment(ref _commits);
        TaskCompletionSource room, appended;
        lock (_lock)
        {
            _pendingBytes -= appends.Sum(a => (long)(a.Topic.Length + a.Payload.Length));
            _bytes += added - removed - droppedBytes;
            _count += inserted - removedCount - dropped;
            _windowKeys = [.. _windows.Keys];
            _dropped += dropped;
            if (lastSeq > 0)
            {
                _lastSeq = lastSeq;
            }

            room = _room;
            appended = _appended;
            if (removed > 0 || dropped > 0)
            {
                _room = NewSignal();
            }

            if (inserted > 0)
            {
                _appended = NewSignal();
            }
        }

        foreach (var a in appends)
        {
            if (failed is not null && failed.TryGetValue(a, out var error))
            {
                a.Done.TrySetException(error);
            }
            else
            {
                a.Done.TrySetResult();
            }
        }

        if (removed > 0 || dropped > 0)
        {
            room.TrySetResult();
        }

        if (inserted > 0)
        {
            appended.TrySetResult();
        }
    }

    /// <summary>Deletes the messages that are still there; returns how many and their bytes.</summary>
    private (long Count, long Bytes) Delete(SqliteTransaction transaction, List<long> seqs)
    {
        long count = 0, bytes = 0;
        if (seqs.Count == 0)
        {
            return (0, 0);
        }

        using var delete = _writer.CreateCommand();
        delete.Transaction = transaction;
        delete.CommandText = "DELETE FROM messages WHERE seq = $seq RETURNING length(topic) + length(payload)";
        var seq = delete.Parameters.Add("$seq", SqliteType.Integer);
        foreach (var s in seqs)
        {
            seq.Value = s;
            if (delete.ExecuteScalar() is long size)
            {
                bytes += size;
                count++;
            }
        }

        return (count, bytes);
    }

    private string NewStream()
    {
        var id = Guid.NewGuid().ToString("N");
        using var command = _writer.CreateCommand();
        command.CommandText = "INSERT INTO meta (key, value) VALUES ('stream', $id)";
        command.Parameters.AddWithValue("$id", id);
        command.ExecuteNonQuery();
        return id;
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private static object? Scalar(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private void LoadWindows()
    {
        var windows = new Dictionary<string, string>(StringComparer.Ordinal);
        using var command = _writer.CreateCommand();
        command.CommandText = "SELECT key, state FROM windows";
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                windows[reader.GetString(0)] = reader.GetString(1);
            }
        }

        _windows = windows;
        lock (_lock)
        {
            _windowKeys = [.. windows.Keys];
        }
    }

    private void SaveWindows(SqliteTransaction transaction, HashSet<string> changed)
    {
        if (changed.Count == 0)
        {
            return;
        }

        using var upsert = _writer.CreateCommand();
        upsert.Transaction = transaction;
        var key = upsert.Parameters.Add("$k", SqliteType.Text);
        var state = upsert.Parameters.Add("$s", SqliteType.Text);
        foreach (var k in changed)
        {
            key.Value = k;
            if (_windows.TryGetValue(k, out var value))
            {
                upsert.CommandText = "INSERT OR REPLACE INTO windows (key, state) VALUES ($k, $s)";
                state.Value = value;
            }
            else
            {
                upsert.CommandText = "DELETE FROM windows WHERE key = $k";
                state.Value = DBNull.Value;
            }

            upsert.ExecuteNonQuery();
        }
    }

    /// <summary>One operation for the writer: a message to append, or a window to update or close.</summary>
    private sealed record Pending(string Topic, byte[] Payload, string Leaf, long ReceivedMs, TaskCompletionSource Done)
    {
        public string? WindowKey { get; init; }

        public Func<string?, string>? Update { get; init; }

        public Func<string, (string Topic, byte[] Payload, string Leaf)?>? Close { get; init; }
    }
}

/// <summary>The queue could not take a message (larger than the queue, or the disk failed).</summary>
public sealed class QueueFullException : Exception
{
    public QueueFullException()
    {
    }

    public QueueFullException(string message)
        : base(message)
    {
    }

    public QueueFullException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
