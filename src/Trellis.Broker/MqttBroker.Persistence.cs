using Trellis.Broker.Internal;
using Trellis.Broker.Persistence;
using Trellis.Core.Topics;

namespace Trellis.Broker;

public sealed partial class MqttBroker
{
    private void Restore(BrokerStore store)
    {
        var retained = store.LoadRetained();
        foreach (var message in retained)
        {
            _retained[message.Topic] = message;
        }

        var sessions = store.LoadSessions();
        var messages = 0;
        foreach (var stored in sessions)
        {
            var session = new Session(stored.ClientId)
            {
                ExpirySeconds = stored.ExpirySeconds,
                ProtocolLevel = stored.ProtocolLevel,
                DisconnectedAtMs = stored.DisconnectedAtMs,
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

            foreach (var outgoing in stored.Messages)
            {
                session.TryEnqueue(outgoing, int.MaxValue);
                messages++;
            }

            // The stored rows stay until the client has them all (a crash before then replays them).
            session.JournalSeq = stored.Messages.Count > 0 ? 1 : 0;

            lock (_sessionsLock)
            {
                _sessions[stored.ClientId] = session;
            }
        }

        Logger.StateRestored(sessions.Count, messages, retained.Count);
    }

    private void Save(BrokerStore store)
    {
        List<Session> persistent;
        lock (_sessionsLock)
        {
            persistent = _sessions.Values.Where(s => s.ExpirySeconds > 0).ToList();
        }

        foreach (var session in persistent)
        {
            if (session.Connection is not null)
            {
                session.DisconnectedAtMs = NowMs;
            }
        }

        var messages = store.SaveSessions(persistent);
        Logger.StateSaved(persistent.Count, messages);
    }
}
