using Trellis.Broker.Internal;
using Trellis.Broker.Protocol;
using Trellis.Core.Topics;

namespace Trellis.Broker;

public sealed partial class MqttBroker
{
    /// <summary>Queue depth above which a publisher waits for the subscriber (back-pressure) instead of racing ahead.</summary>
    private int BackPressureDepth => Math.Min(1000, Math.Max(1, Options.MaxQueuedMessagesPerClient / 2));

    /// <summary>Routes a message to every matching subscription. Returns how many subscribers got it.</summary>
    internal int Publish(MqttMessage message, Session? sender) => Publish(message, sender, out _);

    /// <summary>
    /// Routes a message; <paramref name="stamp"/> is the route stamp every reached session now
    /// carries. A client's publish (<paramref name="sender"/> set) was already shown to the
    /// observer by its connection.
    /// </summary>
    internal int Publish(MqttMessage message, Session? sender, out long stamp) => Publish(message, sender, out stamp, out _);

    /// <summary>
    /// Routes a message. <paramref name="durable"/> completes once every copy kept for a persistent
    /// session is on disk (null when none was kept): the publisher's acknowledgement waits for it.
    /// </summary>
    internal int Publish(MqttMessage message, Session? sender, out long stamp, out Task? durable)
    {
        if (sender is null)
        {
            Observe(message, null);
        }

        if (message.Retain)
        {
            SetRetained(message);
        }

        stamp = Interlocked.Increment(ref _routeStamp);
        var state = new RouteState(this, message, sender, stamp);
        _index.Match(message.Topic, ref state, static (ref RouteState s, Subscriber subscriber) => s.Match(subscriber));
        state.DeliverMerged();
        if (sender?.Connection is { } connection && state.Congested is { } congested)
        {
            connection.CongestedOn = congested;
        }

        durable = state.Durable;
        return state.Matched;
    }

    /// <summary>Adds one subscription. Returns the SUBACK reason code.</summary>
    internal byte Subscribe(MqttConnection connection, TopicSubscription requested, bool v5, out TopicSubscription? accepted, out bool sendRetained)
    {
        accepted = null;
        sendRetained = false;
        var session = connection.Session!;
        var filter = requested.Filter;
        string? group = null;
        if (SharedSubscription.TryParse(filter, out var shareName, out var shareFilter, out var valid))
        {
            if (!valid || requested.NoLocal)
            {
                // MQTT 5 §3.8.3.1: No Local on a shared subscription is a protocol error; we refuse the filter.
                return v5 ? ReasonCode.TopicFilterInvalid : ReasonCode.UnspecifiedError;
            }

            group = shareName;
            filter = shareFilter;
        }
        else if (!TopicValidator.IsValidTopicFilter(filter))
        {
            return v5 ? ReasonCode.TopicFilterInvalid : ReasonCode.UnspecifiedError;
        }

        if (!connection.Principal!.Policy.CanSubscribe(requested.Filter))
        {
            Logger.SubscribeDenied(connection.ClientId, requested.Filter);
            connection.Activity?.AuthorizationFailed(NowMs);
            return v5 ? ReasonCode.NotAuthorized : ReasonCode.UnspecifiedError;
        }

        if (session.SubscriptionCount >= Options.MaxSubscriptionsPerClient && !session.HasSubscription(requested.Filter))
        {
            Logger.SubscriptionQuotaExceeded(connection.ClientId, requested.Filter, Options.MaxSubscriptionsPerClient);
            return v5 ? ReasonCode.QuotaExceeded : ReasonCode.UnspecifiedError;
        }

        var maxQos = Math.Min(requested.MaxQos, (byte)2);
        accepted = requested with { MaxQos = (byte)maxQos };
        session.AddSubscription(accepted, out var existed);
        _index.Add(session, accepted, group, filter);
        sendRetained = group is null && (accepted.RetainHandling == 0 || (accepted.RetainHandling == 1 && !existed));
        return (byte)maxQos;
    }

    internal bool Unsubscribe(Session session, string filter)
    {
        if (!session.RemoveSubscription(filter))
        {
            return false;
        }

        RemoveFromIndex(session, filter);
        return true;
    }

    private void RemoveFromIndex(Session session, string filter)
    {
        if (SharedSubscription.TryParse(filter, out var group, out var shareFilter, out var valid))
        {
            if (valid)
            {
                _index.Remove(session, group, shareFilter);
            }
        }
        else
        {
            _index.Remove(session, null, filter);
        }
    }

    /// <summary>Sends the retained messages matching a new subscription (RETAIN=1, §3.3.1.3).</summary>
    internal void DeliverRetained(Session session, TopicSubscription subscription)
    {
        var delivered = false;
        uint[]? ids = subscription.SubscriptionIdentifier is { } id ? [id] : null;
        foreach (var (topic, message) in _retained)
        {
            if (!TopicMatcher.Matches(subscription.Filter, topic) || message.IsExpired(NowMs) || !session.CanReceive(topic, Authenticator.PolicyGeneration))
            {
                continue;
            }

            var qos = (byte)Math.Min(message.Qos, subscription.MaxQos);
            if (session.TryEnqueue(new Outgoing(message, qos, true, ids), Options.MaxQueuedMessagesPerClient, JournalFor(session, qos), out _))
            {
                delivered = true;
            }
        }

        if (delivered)
        {
            session.Connection?.Wake();
        }
    }

    /// <summary>The journal a delivery of <paramref name="qos"/> to <paramref name="session"/> is kept in: QoS 1/2 to a persistent session.</summary>
    private Persistence.SessionJournal? JournalFor(Session session, byte qos) =>
        qos > 0 && session.ExpirySeconds > 0 ? _store?.Journal : null;

    private void SetRetained(MqttMessage message)
    {
        if (message.Payload.IsEmpty)
        {
            // §3.3.1.3: a retained message with an empty payload deletes the retained message.
            if (_retained.TryRemove(message.Topic, out _))
            {
                _store?.DeleteRetained(message.Topic);
            }

            return;
        }

        _retained[message.Topic] = message;
        _store?.SaveRetained(message);
    }

    /// <summary>
    /// Back-pressure: a publisher whose message pushed a subscriber's queue past
    /// <see cref="BackPressureDepth"/> stops reading (its read loop breaks right after that packet)
    /// and waits here until the subscriber drains, so TCP flow control slows the publisher instead
    /// of the broker accepting what it cannot deliver. A subscriber whose writer has taken nothing
    /// for <see cref="BrokerOptions.SubscriberStallSeconds"/> is marked stalled: publishers stop
    /// waiting for it and its queue fills to its limit, past which messages are dropped and counted,
    /// so one stuck client never stalls the others for long.
    /// </summary>
    internal async ValueTask WaitForCongestionAsync(MqttConnection connection)
    {
        var session = connection.CongestedOn;
        if (session is null)
        {
            return;
        }

        connection.CongestedOn = null;
        var depth = BackPressureDepth;
        var stallMs = Options.SubscriberStallSeconds * 1000L;
        var closed = connection.Closed;
        while (session.QueueCount > depth && !session.Stalled && session.Connection is not null)
        {
            if (closed.IsCancellationRequested)
            {
                return; // the publisher is closing: nothing more of it to hold back (its delay below would no longer wait)
            }

            if (Environment.TickCount64 - Volatile.Read(ref session.LastProgressMs) > stallMs)
            {
                session.Stalled = true;
                return;
            }

            var drained = session.WaitDrainedAsync();
            await Task.WhenAny(drained, Task.Delay(50, closed));
        }
    }

    internal static void OnQueueDrained(Session session)
    {
        Volatile.Write(ref session.LastProgressMs, Environment.TickCount64);
        session.Stalled = false;
        session.SignalDrained();
    }

    /// <summary>
    /// Sessions with more than one subscription, gathered while one thread walks the index, so that
    /// each gets the message once with everything its matching subscriptions ask for.
    /// </summary>
    [ThreadStatic]
    private static MergeBuffer? t_merge;

    private sealed class MergeBuffer
    {
        public readonly List<Merge> Items = [];
        public readonly Dictionary<Session, int> Index = new(ReferenceEqualityComparer.Instance);
    }

    private record struct Merge(Session Session, byte Qos, bool Retain, uint[]? SubscriptionIds);

    /// <summary>Per-publish routing state: which message, who sent it, what got congested, what must be durable first.</summary>
    private ref struct RouteState(MqttBroker broker, MqttMessage message, Session? sender, long stamp)
    {
        public int Matched;

        public Session? Congested;

        /// <summary>The journal group of the last copy kept for a persistent session (later groups commit after earlier ones).</summary>
        public Task? Durable;

        private MergeBuffer? _merge;

        public void Match(Subscriber subscriber)
        {
            var session = subscriber.Session;
            var options = subscriber.Options;
            if (options.NoLocal && session == sender)
            {
                return;
            }

            var qos = (byte)Math.Min(message.Qos, options.MaxQos);
            var retain = options.RetainAsPublished && message.Retain;
            if (session.SubscriptionCount > 1)
            {
                // It may match again: one delivery after the walk, with the highest QoS granted and
                // every matching Subscription Identifier (MQTT 5 §3.3.4).
                _merge ??= t_merge ?? new MergeBuffer();
                t_merge = null;
                if (_merge.Index.TryGetValue(session, out var at))
                {
                    var merged = _merge.Items[at];
                    _merge.Items[at] = merged with
                    {
                        Qos = Math.Max(merged.Qos, qos),
                        Retain = merged.Retain || retain,
                        SubscriptionIds = merged.SubscriptionIds is null ? subscriber.SubscriptionIds
                            : subscriber.SubscriptionIds is null ? merged.SubscriptionIds
                            : [.. merged.SubscriptionIds, .. subscriber.SubscriptionIds],
                    };
                }
                else
                {
                    _merge.Index[session] = _merge.Items.Count;
                    _merge.Items.Add(new Merge(session, qos, retain, subscriber.SubscriptionIds));
                }

                return;
            }

            Deliver(session, qos, retain, subscriber.SubscriptionIds);
        }

        public void DeliverMerged()
        {
            if (_merge is not { } merge)
            {
                return;
            }

            foreach (var item in merge.Items)
            {
                Deliver(item.Session, item.Qos, item.Retain, item.SubscriptionIds);
            }

            merge.Items.Clear();
            merge.Index.Clear();
            t_merge = merge;
            _merge = null;
        }

        private void Deliver(Session session, byte qos, bool retain, uint[]? subscriptionIds)
        {
            // Once per message and session, even if its subscriptions changed during the walk.
            if (Interlocked.Exchange(ref session.RouteStamp, stamp) == stamp)
            {
                return;
            }

            if (!session.CanReceive(message.Topic, broker.Authenticator.PolicyGeneration))
            {
                return;
            }

            var connection = session.Connection;
            if (connection is null && qos == 0)
            {
                // Offline persistent session: keep QoS 1/2, drop QoS 0 as AWS IoT does.
                return;
            }

            // A persistent session's QoS 1/2 copy is journaled first, so the publisher's
            // acknowledgement can wait for it to be on disk, whether the subscriber is online or not.
            var max = broker.Options.MaxQueuedMessagesPerClient;
            if (!session.TryEnqueue(new Outgoing(message, qos, retain, subscriptionIds), max, broker.JournalFor(session, qos), out var durable))
            {
                if (session.Discarded)
                {
                    return;
                }

                broker.Metrics.Dropped();
                if (!session.OverflowLogged)
                {
                    session.OverflowLogged = true;
                    broker.Logger.QueueFull(session.ClientId, max, session.Dropped);
                }

                return;
            }

            Durable = durable ?? Durable;
            Matched++;
            if (connection is not null)
            {
                if (sender?.Connection is { } publisher)
                {
                    publisher.DeferWake(connection);
                }
                else
                {
                    connection.Wake();
                }

                if (session.QueueCount > broker.BackPressureDepth && !session.Stalled)
                {
                    Congested = session;
                }
            }
        }
    }

    /// <summary>
    /// Hands a message to the observer (the rules engine) when it wants its topic. Returns the
    /// message as the observer must see it when the observer is full and the message is a client's
    /// (<paramref name="sender"/> set): the connection then waits with <see cref="ObserveAsync"/>
    /// before it acknowledges. Server messages are never refused.
    /// </summary>
    internal PublishedMessage? Observe(MqttMessage message, Session? sender)
    {
        if (_observer is { } observer && observer.Wants(message.Topic))
        {
            var principal = sender?.Connection?.Principal?.PrincipalIdentifier;
            var published = new PublishedMessage(
                message.Topic, message.Payload, message.Qos, sender is null ? null : message.SenderClientId, principal, message.ReceivedAtMs, message.Origin);
            if (!observer.TryObserve(published, mayRefuse: sender is not null))
            {
                return published;
            }
        }

        return null;
    }

    /// <summary>
    /// Waits until the observer takes a message it refused as full. Only the broker's shutdown
    /// ends the wait: a message already routed to subscribers reaches the rules too, even when its
    /// publisher disconnects meanwhile (the connection stops waiting, this does not).
    /// </summary>
    internal ValueTask ObserveAsync(PublishedMessage message) =>
        _observer!.ObserveAsync(message, _stopping.Token);
}
