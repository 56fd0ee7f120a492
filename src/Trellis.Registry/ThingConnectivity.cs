using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Trellis.Storage;

namespace Trellis.Registry;

/// <summary>A thing's connectivity as AWS reports it: connected or not, since when, and why it went.</summary>
public sealed record ConnectivityRecord(string ThingName, bool Connected, long TimestampMs, string? DisconnectReason);

/// <summary>
/// Which things are online: connected from their CONNACK until their disconnect (the broker closes
/// a connection 1.5 × its keep-alive after its last packet), with AWS's disconnect reason. The
/// current state is in memory; a writer thread keeps <c>thing_connectivity</c> in step, so after a
/// restart things that were online show as offline (SERVER_ERROR after a crash,
/// SERVER_INITIATED_DISCONNECT after a clean stop) until they reconnect. A client counts for the
/// thing its certificate is attached to, else for the thing named like its client id (AWS's rule).
/// </summary>
public sealed partial class ThingConnectivity : IDisposable
{
    private readonly SqliteDatabase _db;
    private readonly Func<string, bool> _thingExists;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, ConnectivityRecord> _things = new(StringComparer.Ordinal);

    /// <summary>The latest connect's version per connected client id; touched by the writer thread only.</summary>
    private readonly Dictionary<string, long> _versions = new(StringComparer.Ordinal);
    private readonly BlockingCollection<Change> _changes = [];
    private readonly Thread _writer;

    public ThingConnectivity(SqliteDatabase db, Func<string, bool> thingExists, TimeProvider time, ILogger<ThingConnectivity> logger)
    {
        ArgumentNullException.ThrowIfNull(db);
        ArgumentNullException.ThrowIfNull(time);
        _db = db;
        _thingExists = thingExists;
        _logger = logger;
        Load(time.GetUtcNow().ToUnixTimeMilliseconds());
        _writer = new Thread(Write) { IsBackground = true, Name = "trellis-connectivity" };
        _writer.Start();
    }

    /// <summary>Raised on the writer thread after a thing's connectivity changed.</summary>
    public event Action<ConnectivityRecord>? Changed;

    /// <summary>Things online now.</summary>
    public int OnlineCount => _things.Values.Count(r => r.Connected);

    public ConnectivityRecord? Get(string thing) => _things.GetValueOrDefault(thing);

    /// <summary>Queues a connect or disconnect (called from the broker's threads).</summary>
    public void Record(string clientId, string? principalThing, long version, bool connected, string? reason, long timestampMs) =>
        Add(new Change(clientId, principalThing, version, connected, reason, timestampMs));

    /// <summary>Forgets a deleted thing.</summary>
    public void Forget(string thing)
    {
        _things.TryRemove(thing, out _);
        Add(new Change(thing, thing, -1, false, null, 0));
    }

    /// <summary>Waits until every queued change is applied and written (tests, shutdown).</summary>
    public void Flush()
    {
        var done = new ManualResetEventSlim();
        if (Add(new Change(string.Empty, null, 0, false, null, 0, done)))
        {
            done.Wait(TimeSpan.FromSeconds(10));
        }
    }

    public void Dispose()
    {
        _changes.CompleteAdding();
        _writer.Join(TimeSpan.FromSeconds(10));
        _changes.Dispose();
    }

    private bool Add(Change change)
    {
        try
        {
            return _changes.TryAdd(change);
        }
        catch (InvalidOperationException)
        {
            return false; // stopping: nothing more is recorded
        }
    }

    private void Load(long now)
    {
        using var connection = _db.Open();
        using (var crashed = connection.CreateCommand())
        {
            // Still marked online: the server stopped without seeing them go (a crash or kill -9).
            crashed.CommandText = "UPDATE thing_connectivity SET connected = 0, timestamp_ms = $now, disconnect_reason = 'SERVER_ERROR' WHERE connected = 1";
            crashed.Parameters.AddWithValue("$now", now);
            crashed.ExecuteNonQuery();
        }

        using var read = connection.CreateCommand();
        read.CommandText = "SELECT thing, connected, timestamp_ms, disconnect_reason FROM thing_connectivity";
        using var reader = read.ExecuteReader();
        while (reader.Read())
        {
            var thing = reader.GetString(0);
            _things[thing] = new ConnectivityRecord(thing, reader.GetInt64(1) == 1, reader.GetInt64(2), reader.IsDBNull(3) ? null : reader.GetString(3));
        }
    }

    private void Write()
    {
        var batch = new List<Change>();
        while (!_changes.IsCompleted)
        {
            batch.Clear();
            try
            {
                batch.Add(_changes.Take());
            }
            catch (InvalidOperationException)
            {
                return; // completed while waiting
            }

            while (batch.Count < 1000 && _changes.TryTake(out var change))
            {
                batch.Add(change);
            }

            try
            {
                Apply(batch);
            }
            catch (Exception e) when (e is Microsoft.Data.Sqlite.SqliteException or InvalidOperationException or IOException)
            {
                LogWriteFailed(_logger, batch.Count, e.Message);
            }
            finally
            {
                foreach (var change in batch)
                {
                    change.Done?.Set();
                }
            }
        }
    }

    private void Apply(List<Change> batch)
    {
        var written = new Dictionary<string, ConnectivityRecord?>(StringComparer.Ordinal);
        foreach (var change in batch)
        {
            if (change.Done is not null)
            {
                continue;
            }

            if (change.Version < 0)
            {
                written[change.ClientId] = null; // deleted thing
                continue;
            }

            // A takeover's late disconnect must not hide the connection that replaced it.
            var latest = _versions.GetValueOrDefault(change.ClientId);
            if (change.Version < latest)
            {
                continue;
            }

            if (change.Connected)
            {
                _versions[change.ClientId] = change.Version;
            }
            else
            {
                _versions.Remove(change.ClientId);
            }

            var thing = change.PrincipalThing ?? (_things.ContainsKey(change.ClientId) || _thingExists(change.ClientId) ? change.ClientId : null);
            if (thing is null)
            {
                continue; // a client that is no thing (an operator, a test client)
            }

            var record = new ConnectivityRecord(thing, change.Connected, change.TimestampMs, change.Connected ? null : change.Reason);
            _things[thing] = record;
            written[thing] = record;
        }

        if (written.Count == 0)
        {
            return;
        }

        using (var connection = _db.Open())
        using (var transaction = connection.BeginTransaction())
        {
            using var upsert = connection.CreateCommand();
            upsert.CommandText = """
                INSERT INTO thing_connectivity (thing, connected, timestamp_ms, disconnect_reason) VALUES ($t, $c, $ts, $r)
                ON CONFLICT (thing) DO UPDATE SET connected = excluded.connected, timestamp_ms = excluded.timestamp_ms, disconnect_reason = excluded.disconnect_reason
                """;
            var t = upsert.Parameters.AddWithValue("$t", string.Empty);
            var c = upsert.Parameters.AddWithValue("$c", 0L);
            var ts = upsert.Parameters.AddWithValue("$ts", 0L);
            var r = upsert.Parameters.AddWithValue("$r", DBNull.Value);
            using var delete = connection.CreateCommand();
            delete.CommandText = "DELETE FROM thing_connectivity WHERE thing = $t";
            var dt = delete.Parameters.AddWithValue("$t", string.Empty);
            foreach (var (thing, record) in written)
            {
                if (record is null)
                {
                    dt.Value = thing;
                    delete.ExecuteNonQuery();
                    continue;
                }

                (t.Value, c.Value, ts.Value, r.Value) = (thing, record.Connected ? 1L : 0L, record.TimestampMs, (object?)record.DisconnectReason ?? DBNull.Value);
                upsert.ExecuteNonQuery();
            }

            transaction.Commit();
        }

        foreach (var record in written.Values)
        {
            if (record is not null)
            {
                Changed?.Invoke(record);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not store the connectivity of {Count} things ({Reason}); the state in memory is current, and the next change is written again")]
    private static partial void LogWriteFailed(ILogger logger, int count, string reason);

    private sealed record Change(string ClientId, string? PrincipalThing, long Version, bool Connected, string? Reason, long TimestampMs, ManualResetEventSlim? Done = null);
}
