using Trellis.Broker.Internal;
using Trellis.Broker.Persistence;
using Trellis.Core.Topics;

namespace Trellis.Broker;

public sealed partial class MqttBroker
{
    private void Restore(BrokerStore store)
    {
        foreach (var (client, stream, mark, seen) in store.LoadPublishStreams())
        {
            Sequences.Restore(client, stream, mark, seen);
        }

        var retained = store.LoadRetained();
        foreach (var message in retained)
        {
            _retained[message.Topic] = message;
        }

        var sessions = store.LoadSessions();
        var journal = store.Journal;
        var now = NowMs;
        var messages = 0;
        var dropped = 0;
        foreach (var stored in sessions)
        {
            var session = new Session(stored.ClientId)
            {
                ExpirySeconds = stored.ExpirySeconds,
                ProtocolLevel = stored.ProtocolLevel,
                Owner = stored.Owner,
                Stored = true,

                // 0: the session was connected when the server stopped without saving (a crash). Its
                // expiry counts from the end of its connection (MQTT 5 §3.1.2.11.2), which for a crash
                // is this restart.
                DisconnectedAtMs = stored.DisconnectedAtMs == 0 ? now : stored.DisconnectedAtMs,
            };

            // Until the client reconnects, Receive checks use the policies of its last principal; we do
            // not know it after a restart, so deliveries queue for it and are checked when it connects.
            session.Principal = Authenticator.RestoredPrincipal(stored.ClientId);
            foreach (var subscription in stored.Subscriptions.Select(s => s.ToSubscription()))
            {
                session.AddSubscription(subscription, out _);
                if (SharedSubscription.TryParse(subscription.Filter, out var group, out var filter, out var valid))
                {
                    if (valid)
                    {
                        _index.Add(session, subscription, group, filter);
                    }
                }
                else
                {
                    _index.Add(session, subscription, null, subscription.Filter);
                }
            }

            // The journal holds only what the queue took, so this fits unless the limit was lowered.
            foreach (var outgoing in stored.Messages)
            {
                if (session.TryEnqueue(outgoing, Options.MaxQueuedMessagesPerClient))
                {
                    messages++;
                }
                else
                {
                    journal.Remove(outgoing.JournalSeq);
                    dropped++;
                }
            }

            if (stored.DisconnectedAtMs == 0)
            {
                _ = journal.UpsertAsync(BrokerStore.RowOf(session));
            }

            lock (_sessionsLock)
            {
                _sessions[stored.ClientId] = session;
            }
        }

        if (dropped > 0)
        {
            Metrics.Dropped(dropped);
            Logger.RestoredOverLimit(dropped, Options.MaxQueuedMessagesPerClient);
        }

        Logger.StateRestored(sessions.Count, messages, retained.Count);
    }

    /// <summary>
    /// At shutdown: every persistent session's row gets its disconnect time. Their messages are in
    /// the journal already (each was written before its publisher's acknowledgement).
    /// </summary>
    private async Task SaveAsync(BrokerStore store)
    {
        List<Session> persistent;
        lock (_sessionsLock)
        {
            persistent = _sessions.Values.Where(s => s.ExpirySeconds > 0).ToList();
        }

        var now = NowMs;
        var messages = 0;
        foreach (var session in persistent)
        {
            if (session.Connection is not null)
            {
                session.DisconnectedAtMs = now;
            }

            messages += session.QueueCount;
            _ = store.Journal.UpsertAsync(BrokerStore.RowOf(session));
            session.Stored = true;
        }

        await store.Journal.FlushAsync();
        store.SavePublishStreams(Sequences.Snapshot());
        Logger.StateSaved(persistent.Count, messages);
    }
}
