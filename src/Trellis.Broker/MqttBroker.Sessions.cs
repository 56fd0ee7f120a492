using Trellis.Broker.Internal;
using Trellis.Broker.Persistence;
using Trellis.Broker.Protocol;

namespace Trellis.Broker;

public sealed partial class MqttBroker
{
    /// <summary>
    /// Why an operator identity (an API key) may not take <paramref name="clientId"/>: its
    /// session, connected or kept, belongs to a device (a certificate, a device token, or a session
    /// from before owners were recorded). Null when it may. Operators never take over or resume a
    /// device's session.
    /// </summary>
    internal string? OperatorConflict(string clientId)
    {
        lock (_sessionsLock)
        {
            return _sessions.TryGetValue(clientId, out var existing) && existing.Owner?.StartsWith("operator:", StringComparison.Ordinal) != true
                ? $"client id '{clientId}' holds a session of {existing.Owner ?? "a device"}: an API key never takes over or resumes a device's session; use a client id of its own"
                : null;
        }
    }

    /// <summary>
    /// Binds a new connection to its session (MQTT §4.1): resumes it, or starts a new one, and takes
    /// it over from an older connection with the same client id. Returns "session present";
    /// <paramref name="durable"/> completes once a persistent session's row is on disk (the CONNACK waits for it).
    /// </summary>
    internal bool AttachSession(MqttConnection connection, ConnectPacket connect, ClientPrincipal principal, out Session session, out Task? durable)
    {
        var expiry = connect.IsV5
            ? (uint)Math.Min(connect.SessionExpirySeconds, Options.MaxSessionExpirySeconds)
            : connect.CleanStart ? 0u : (uint)Options.PersistentSessionExpirySeconds;

        if (_pendingWills.TryRemove(connect.ClientId, out var pendingWill))
        {
            // A delayed will is cancelled when the client comes back in time (MQTT 5 §3.1.3.2.2).
            pendingWill.Cancel();
            pendingWill.Dispose();
        }

        MqttConnection? previous;
        bool present;
        Session? discarded = null;
        var wasStored = false;
        bool previousEnded;
        lock (_sessionsLock)
        {
            _sessions.TryGetValue(connect.ClientId, out var existing);
            previous = existing?.Connection;
            previousEnded = existing is null || connect.CleanStart || existing.ExpirySeconds == 0;
            if (existing is not null && !connect.CleanStart)
            {
                session = existing;
                present = true;
                wasStored = existing.Stored;
            }
            else
            {
                discarded = existing;
                // Nothing of the old session may reach the new one: it takes no more messages, its
                // subscriptions leave the index below, and its old connection, still closing, must
                // not write it back.
                discarded?.Discard();

                session = new Session(connect.ClientId);
                present = false;
                _sessions[connect.ClientId] = session;
            }

            session.ExpirySeconds = expiry;
            session.ProtocolLevel = connect.ProtocolLevel;
            session.Principal = principal;
            session.Owner = principal.SessionOwner;
            session.DisconnectedAtMs = 0;
            session.ClearReceiveCache();
            session.Connection = connection;
        }

        durable = null;
        var journal = _store?.Journal;
        if (discarded is not null)
        {
            foreach (var subscription in discarded.GetSubscriptions())
            {
                RemoveFromIndex(discarded, subscription.Filter);
            }

            if (discarded.Stored)
            {
                durable = journal?.DeleteSessionAsync(discarded.ClientId);
            }
        }

        if (expiry > 0 && journal is not null)
        {
            session.Stored = true;
            durable = journal.UpsertAsync(BrokerStore.RowOf(session));
        }
        else if (wasStored && journal is not null)
        {
            // Resumed with no expiry any more: it ends with this connection, and a crash must not bring it back.
            session.Stored = false;
            durable = journal.DeleteSessionAsync(session.ClientId);
        }

        if (previous is not null && previous != connection)
        {
            // AWS IoT and MQTT §3.1.4: one connection per client id; the newer one wins.
            previous.TakeoverEndedSession = previousEnded;
            previous.TakenOver = true;
            previous.Close(ReasonCode.SessionTakenOver, "DUPLICATE_CLIENTID", "another connection took over this client id");
        }

        return present;
    }

    internal async Task OnConnectionClosedAsync(MqttConnection connection)
    {
        if (!_connections.TryRemove(connection, out _))
        {
            return;
        }

        Metrics.ConnectionClosed();
        var session = connection.Session;
        if (session is null || !connection.IsConnected)
        {
            return;
        }

        var ended = false;
        var detached = false;
        lock (_sessionsLock)
        {
            if (session.Connection == connection)
            {
                session.Connection = null;
                detached = !session.Discarded;
                session.DisconnectedAtMs = NowMs;
                if (session.ExpirySeconds == 0 && _sessions.TryGetValue(session.ClientId, out var current) && current == session)
                {
                    _sessions.Remove(session.ClientId);
                    session.Discard();
                    ended = true;
                }
            }
        }

        if (ended)
        {
            foreach (var subscription in session.GetSubscriptions())
            {
                RemoveFromIndex(session, subscription.Filter);
            }

            if (session.Stored)
            {
                _ = _store?.Journal.DeleteSessionAsync(session.ClientId);
            }
        }
        else if (detached && session.ExpirySeconds > 0 && _store is not null)
        {
            session.Stored = true;
            _ = _store.Journal.UpsertAsync(BrokerStore.RowOf(session));
        }

        if (connection.Will is { } will && !connection.WillDiscarded)
        {
            var delay = Math.Min(connection.WillDelaySeconds, session.ExpirySeconds);
            if (connection.TakenOver)
            {
                // Taken over: the will goes now if the session ended with it, and never if the
                // newer connection carries the session on (it came back within any delay).
                if (connection.TakeoverEndedSession)
                {
                    PublishWill(connection, will);
                }
            }
            else if (delay == 0 || ended)
            {
                PublishWill(connection, will);
            }
            else
            {
                ScheduleWill(connection, will, TimeSpan.FromSeconds(delay));
            }
        }

        Logger.ClientDisconnected(connection.ClientId, connection.DisconnectReason);
        PublishDisconnectedEvent(connection);
        await Task.CompletedTask;
    }

    /// <summary>After subscriptions change, a persistent session is written down; the SUBACK waits for the returned task.</summary>
    internal Task? OnSessionChangedAsync(Session session)
    {
        if (session.ExpirySeconds > 0 && !session.Discarded && _store is not null)
        {
            session.Stored = true;
            return _store.Journal.UpsertAsync(BrokerStore.RowOf(session));
        }

        return null;
    }

    /// <summary>A journaled message the client acknowledged, or that can never be sent to it: its journal entry goes.</summary>
    internal void ForgetJournaled(long journalSeq)
    {
        if (journalSeq > 0)
        {
            _store?.Journal.Remove(journalSeq);
        }
    }

    /// <summary>Completes once every journal write asked for so far is durable (null without a store).</summary>
    internal Task? JournalFlushedAsync() => _store?.Journal.FlushAsync();

    private void PublishWill(MqttConnection connection, MqttMessage will)
    {
        var policy = connection.Principal!.Policy;
        if (!policy.CanPublish(will.Topic) || (will.Retain && !policy.CanRetainPublish(will.Topic)))
        {
            Logger.WillDenied(connection.ClientId, will.Topic);
            return;
        }

        var message = new MqttMessage
        {
            Topic = will.Topic,
            Payload = will.Payload,
            Qos = will.Qos,
            Retain = will.Retain,
            Properties = will.Properties,
            SenderClientId = connection.ClientId,
            ReceivedAtMs = NowMs,
        };
        Publish(message, null);
    }

    private void ScheduleWill(MqttConnection connection, MqttMessage will, TimeSpan delay)
    {
        var cts = new CancellationTokenSource();
        _pendingWills[connection.ClientId] = cts;
        _ = Task.Delay(delay, _time, cts.Token).ContinueWith(
            t =>
            {
                if (!t.IsCanceled && _pendingWills.TryRemove(new KeyValuePair<string, CancellationTokenSource>(connection.ClientId, cts)))
                {
                    PublishWill(connection, will);
                    cts.Dispose();
                }
            },
            CancellationToken.None,
            TaskContinuationOptions.None,
            TaskScheduler.Default);
    }

    private long _sweeps;

    /// <summary>Runs of the once-a-second sweep (timeouts, expired sessions) since start.</summary>
    public long Sweeps => Interlocked.Read(ref _sweeps);

    /// <summary>Starts watching a connected client's keep-alive (called once its CONNACK is sent).</summary>
    internal void WatchKeepAlive(MqttConnection connection)
    {
        if (connection is { IsConnected: true, KeepAliveSeconds: > 0 })
        {
            lock (_keepAliveLock)
            {
                _keepAlives.Enqueue(connection, KeepAliveDeadline(connection));
            }
        }
    }

    /// <summary>MQTT §3.1.2.10: 1.5 × the keep-alive after the client's last packet (epoch ms).</summary>
    private static long KeepAliveDeadline(MqttConnection connection) => connection.LastActivityMs + (connection.KeepAliveSeconds * 1500L);

    /// <summary>
    /// MQTT §3.1.2.10: a client is closed 1.5 × its keep-alive after its last packet. Each connected
    /// client sits in a queue by that deadline; every 50 ms the due ones are checked against their
    /// latest activity, closed if it is really past, else put back at their new deadline. A silent
    /// client is closed at most ~50 ms late, whatever the number of clients, and a client that
    /// keeps talking costs one queue operation per keep-alive period.
    /// </summary>
    private async Task WatchKeepAlivesAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(50), _time);
        var due = new List<MqttConnection>();
        while (await timer.WaitForNextTickAsync(cancellationToken))
        {
            var now = NowMs;
            due.Clear();
            lock (_keepAliveLock)
            {
                while (_keepAlives.TryPeek(out var connection, out var deadline) && deadline < now)
                {
                    _keepAlives.Dequeue();
                    if (!_connections.ContainsKey(connection))
                    {
                        continue; // gone already
                    }

                    var actual = KeepAliveDeadline(connection);
                    if (actual < now)
                    {
                        due.Add(connection);
                    }
                    else
                    {
                        _keepAlives.Enqueue(connection, actual);
                    }
                }
            }

            foreach (var connection in due)
            {
                Logger.TimedOut(connection.ClientId, connection.RemoteAddress, $"keep-alive of {connection.KeepAliveSeconds} s expired");
                connection.Close(ReasonCode.KeepAliveTimeout, "MQTT_KEEP_ALIVE_TIMEOUT");
            }
        }
    }

    /// <summary>Once a second: connect and incomplete-packet timeouts; expired sessions; the heap settled after a burst.</summary>
    private async Task SweepAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1), _time);
        var settler = new HeapSettler(Options.SettleHeapQuietSeconds, Logger);
        while (await timer.WaitForNextTickAsync(cancellationToken))
        {
            var now = NowMs;
            settler.Tick(_connections.Count, now);
            // The dictionary's own enumerator: Keys would copy every connection into a new list each second.
            foreach (var (connection, _) in _connections)
            {
                if (!connection.IsConnected)
                {
                    if (now - connection.OpenedAtMs > Options.ConnectTimeoutSeconds * 1000L)
                    {
                        Logger.TimedOut(connection.ClientId, connection.RemoteAddress, $"no CONNECT within {Options.ConnectTimeoutSeconds} s");
                        connection.Abort();
                    }

                    continue;
                }

                // Keep-alives are watched by their own deadlines (WatchKeepAlivesAsync), not this sweep.
                if (connection.PartialSinceMs > 0 && now - connection.PartialSinceMs > Options.IncompletePacketTimeoutSeconds * 1000L)
                {
                    Logger.TimedOut(connection.ClientId, connection.RemoteAddress, $"a packet stayed incomplete for {Options.IncompletePacketTimeoutSeconds} s");
                    connection.Close(ReasonCode.MalformedPacket, "CLIENT_ERROR", "incomplete packet");
                }
            }

            // Closed clients stay in the keep-alive queue until their deadline: when they outnumber
            // the live ones (churn with long keep-alives), the queue is rebuilt from the live ones.
            lock (_keepAliveLock)
            {
                if (_keepAlives.Count > 1024 && _keepAlives.Count > 2 * _connections.Count)
                {
                    _keepAlives.Clear();
                    foreach (var (connection, _) in _connections)
                    {
                        if (connection is { IsConnected: true, KeepAliveSeconds: > 0 })
                        {
                            _keepAlives.Enqueue(connection, KeepAliveDeadline(connection));
                        }
                    }
                }
            }

            List<Session>? expired = null;
            lock (_sessionsLock)
            {
                foreach (var session in _sessions.Values)
                {
                    if (session.Connection is null && now - session.DisconnectedAtMs > session.ExpirySeconds * 1000L)
                    {
                        (expired ??= []).Add(session);
                    }
                }

                if (expired is not null)
                {
                    foreach (var session in expired)
                    {
                        _sessions.Remove(session.ClientId);
                        session.Discard();
                    }
                }
            }

            if (expired is not null)
            {
                foreach (var session in expired)
                {
                    foreach (var subscription in session.GetSubscriptions())
                    {
                        RemoveFromIndex(session, subscription.Filter);
                    }

                    if (session.Stored)
                    {
                        _ = _store?.Journal.DeleteSessionAsync(session.ClientId);
                    }
                }
            }

            Interlocked.Increment(ref _sweeps);
        }
    }
}
