using Trellis.Broker.Protocol;

namespace Trellis.Broker.Internal;

/// <summary>
/// MQTT session state (MQTT 5 §4.1): subscriptions, the outbound queue, QoS 1/2 in flight both
/// ways. Outlives its connection when the session is persistent. All mutable state is guarded by
/// <see cref="Gate"/>; the connection's writer loop is the only consumer of the queue.
/// </summary>
internal sealed class Session(string clientId)
{
    /// <summary>
    /// The monitor this object's state is guarded by: the object itself (internal, never handed to
    /// code that could lock it too), so that each connection carries no lock object of its own
    /// (40 bytes each; a thin lock in the object header costs nothing until contended).
    /// </summary>
    private object Gate => this;
    // The queue, the subscriptions and the QoS 1/2 state are created on first use: an idle session
    // (a device that connected and waits) carries none of them.
    private Queue<Outgoing>? _queue;
    private Dictionary<ushort, Inflight>? _inflight;
    // QoS 2 deliveries the client has received (PUBREC) and not yet completed, with their journal sequence.
    private Dictionary<ushort, long>? _awaitingPubComp;
    private HashSet<ushort>? _incomingQos2;
    private Dictionary<string, TopicSubscription>? _subscriptions;
    private Queue<(ushort Id, Outgoing Item)>? _retransmit;
    private System.Collections.Concurrent.ConcurrentDictionary<string, bool>? _receiveAllowed;
    private int _receiveCacheCount;
    private ushort _nextPacketId;
    private long _sendSequence;
    private int _queueCount;
    private int _subscriptionCount;
    private bool _discarded;
    private MqttConnection? _connection;

    public string ClientId { get; } = clientId;

    /// <summary>Seconds the session outlives its connection; 0 = ends with it.</summary>
    public uint ExpirySeconds { get; set; }

    public byte ProtocolLevel { get; set; } = 4;

    public long DisconnectedAtMs { get; set; }

    /// <summary>Who the session belongs to; used for Receive checks even while offline.</summary>
    public ClientPrincipal? Principal { get; set; }

    /// <summary>
    /// The kind of identity that owns the session and its id (<see cref="ClientPrincipal.SessionOwner"/>),
    /// kept across restarts: an operator key can never resume a device's session.
    /// </summary>
    public string? Owner { get; set; }

    /// <summary>True once the session's row has been written to the journal (it must be deleted when the session ends).</summary>
    public bool Stored { get; set; }

    /// <summary>True once a clean start or expiry replaced or ended the session: it takes no more messages.</summary>
    public bool Discarded => Volatile.Read(ref _discarded);

    public MqttConnection? Connection
    {
        get => Volatile.Read(ref _connection);
        set => Volatile.Write(ref _connection, value);
    }

    public int QueueCount => Volatile.Read(ref _queueCount);

    public long Dropped;

    /// <summary>Set once per overflow episode so the drop is logged once, not per message.</summary>
    public bool OverflowLogged;

    /// <summary>How many subscriptions the session holds: with one, a message can match it only once.</summary>
    public int SubscriptionCount => Volatile.Read(ref _subscriptionCount);

    /// <summary>Stamp of the last message routed here, so overlapping subscriptions deliver once.</summary>
    public long RouteStamp;

    /// <summary>
    /// When the writer last took from the queue, or the queue last became non-empty
    /// (<see cref="Environment.TickCount64"/>): tells a slow subscriber from a stuck one.
    /// </summary>
    public long LastProgressMs = Environment.TickCount64;

    /// <summary>True while the subscriber makes no progress: publishers stop waiting for it and its overflow is dropped.</summary>
    public volatile bool Stalled;

    private TaskCompletionSource? _drained;

    /// <summary>A task that completes when the writer takes from the queue next.</summary>
    public Task WaitDrainedAsync()
    {
        lock (Gate)
        {
            _drained ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _drained.Task;
        }
    }

    public void SignalDrained()
    {
        TaskCompletionSource? waiter;
        lock (Gate)
        {
            waiter = _drained;
            _drained = null;
        }

        waiter?.TrySetResult();
    }

    public bool TryEnqueue(in Outgoing item, int maxQueued) => TryEnqueue(item, maxQueued, null, out _);

    /// <summary>
    /// Queues a delivery unless the queue is full or the session was discarded. With a
    /// <paramref name="journal"/>, the message is first appended to it under a new sequence number
    /// (<paramref name="durable"/> completes when that is on disk): both under this session's lock, so
    /// no acknowledgement can remove the entry before it is appended, and no append can follow the
    /// session's deletion from the journal.
    /// </summary>
    public bool TryEnqueue(in Outgoing item, int maxQueued, Persistence.SessionJournal? journal, out Task? durable)
    {
        durable = null;
        lock (Gate)
        {
            if (_discarded)
            {
                return false;
            }

            var queue = _queue ??= new Queue<Outgoing>();
            if (queue.Count >= maxQueued)
            {
                Dropped++;
                return false;
            }

            if (queue.Count == 0)
            {
                LastProgressMs = Environment.TickCount64;
            }

            if (journal is null)
            {
                queue.Enqueue(item);
            }
            else
            {
                var kept = item with { JournalSeq = journal.NextSeq() };
                durable = journal.AppendAsync(ClientId, kept);
                queue.Enqueue(kept);
            }

            _queueCount = queue.Count;
            OverflowLogged = false;
            return true;
        }
    }

    /// <summary>Marks the session as replaced or ended; from now on it takes no messages.</summary>
    public void Discard()
    {
        lock (Gate)
        {
            _discarded = true;
        }
    }

    /// <summary>
    /// Takes what may be sent now: first retransmissions after a reconnect, then queued messages
    /// while the QoS 1/2 window has room. QoS &gt; 0 messages get a packet id and enter the window.
    /// </summary>
    /// <remarks>Expired messages are dropped; those kept in the journal are added to <paramref name="expired"/>.</remarks>
    public int TakeBatch(Span<(ushort PacketId, Outgoing Item, bool Dup)> batch, int window, long nowMs, ref List<long>? expired)
    {
        var count = 0;
        lock (Gate)
        {
            while (count < batch.Length && _retransmit is not null && _retransmit.TryDequeue(out var again))
            {
                batch[count++] = (again.Id, again.Item, true);
            }

            while (count < batch.Length && _queue is not null && _queue.TryPeek(out var next))
            {
                if (next.Qos > 0 && (_inflight?.Count ?? 0) + (_awaitingPubComp?.Count ?? 0) >= window)
                {
                    break;
                }

                _queue.Dequeue();
                if (next.Message.IsExpired(nowMs))
                {
                    if (next.JournalSeq > 0)
                    {
                        (expired ??= []).Add(next.JournalSeq);
                    }

                    continue;
                }

                ushort id = 0;
                if (next.Qos > 0)
                {
                    id = NextPacketId();
                    (_inflight ??= [])[id] = new Inflight(next, ++_sendSequence);
                }

                batch[count++] = (id, next, false);
            }

            _queueCount = _queue?.Count ?? 0;
            return count;
        }
    }

    /// <summary>PUBACK for a QoS 1 delivery. Returns false when the id was not in flight; <paramref name="journalSeq"/> is the message's journal entry (0: none).</summary>
    public bool Acknowledge(ushort packetId, out long journalSeq)
    {
        lock (Gate)
        {
            journalSeq = 0;
            if (_inflight is not null && _inflight.TryGetValue(packetId, out var entry) && entry.Item.Qos == 1 && _inflight.Remove(packetId))
            {
                journalSeq = entry.Item.JournalSeq;
                return true;
            }

            return false;
        }
    }

    /// <summary>Drops an in-flight delivery the client can never take (larger than its maximum packet size, or no longer allowed).</summary>
    public long Forget(ushort packetId)
    {
        lock (Gate)
        {
            return _inflight is not null && _inflight.Remove(packetId, out var entry) ? entry.Item.JournalSeq : 0;
        }
    }

    /// <summary>iot:Receive decisions for this session's principal, per topic.</summary>
    public bool CanReceive(string topic, long generation)
    {
        var principal = Principal;
        if (principal is null)
        {
            return false;
        }

        if (principal.Refresh(generation))
        {
            ClearReceiveCache();
        }

        // Created on first delivery: an idle session holds no cache (memory per idle connection).
        var cache = Volatile.Read(ref _receiveAllowed);
        if (cache is null)
        {
            cache = new System.Collections.Concurrent.ConcurrentDictionary<string, bool>(1, 8, StringComparer.Ordinal);
            cache = Interlocked.CompareExchange(ref _receiveAllowed, cache, null) ?? cache;
        }

        if (cache.TryGetValue(topic, out var allowed))
        {
            return allowed;
        }

        allowed = principal.Policy.CanReceive(topic);
        if (Interlocked.Increment(ref _receiveCacheCount) > 1024)
        {
            ClearReceiveCache();
        }

        cache[topic] = allowed;
        return allowed;
    }

    public void ClearReceiveCache()
    {
        Volatile.Write(ref _receiveAllowed, null);
        Volatile.Write(ref _receiveCacheCount, 0);
    }

    /// <summary>PUBREC for a QoS 2 delivery: the message is now the client's; a PUBREL follows.</summary>
    public bool Received(ushort packetId)
    {
        lock (Gate)
        {
            if (_inflight is not null && _inflight.TryGetValue(packetId, out var entry) && entry.Item.Qos == 2)
            {
                _inflight.Remove(packetId);
                (_awaitingPubComp ??= [])[packetId] = entry.Item.JournalSeq;
                return true;
            }

            return _awaitingPubComp?.ContainsKey(packetId) ?? false;
        }
    }

    /// <summary>PUBCOMP: the QoS 2 delivery is over. <paramref name="journalSeq"/> is the message's journal entry (0: none).</summary>
    public bool Completed(ushort packetId, out long journalSeq)
    {
        lock (Gate)
        {
            journalSeq = 0;
            return _awaitingPubComp is not null && _awaitingPubComp.Remove(packetId, out journalSeq);
        }
    }

    /// <summary>Incoming QoS 2: true the first time a packet id is seen (route it), false for a resend.</summary>
    public bool BeginIncomingQos2(ushort packetId)
    {
        lock (Gate)
        {
            return (_incomingQos2 ??= []).Add(packetId);
        }
    }

    /// <summary>Whether an incoming QoS 2 message with this packet id awaits its PUBREL.</summary>
    public bool HasIncomingQos2(ushort packetId)
    {
        lock (Gate)
        {
            return _incomingQos2?.Contains(packetId) ?? false;
        }
    }

    /// <summary>Incoming QoS 2 messages awaiting their PUBREL (they count against the Receive Maximum).</summary>
    public int IncomingQos2Count
    {
        get
        {
            lock (Gate)
            {
                return _incomingQos2?.Count ?? 0;
            }
        }
    }

    public bool ReleaseIncomingQos2(ushort packetId)
    {
        lock (Gate)
        {
            return _incomingQos2?.Remove(packetId) ?? false;
        }
    }

    /// <summary>On reconnect to an existing session: resend unacknowledged messages with DUP, and PUBRELs (§4.4).</summary>
    public IReadOnlyList<ushort> PrepareResume()
    {
        lock (Gate)
        {
            _retransmit?.Clear();
            if (_inflight is not null)
            {
                foreach (var (id, entry) in _inflight.OrderBy(e => e.Value.Sequence))
                {
                    (_retransmit ??= new()).Enqueue((id, entry.Item));
                }
            }

            return _awaitingPubComp is null ? [] : [.. _awaitingPubComp.Keys];
        }
    }

    public bool HasPendingDeliveries
    {
        get
        {
            lock (Gate)
            {
                return _queue?.Count > 0 || _inflight?.Count > 0 || _retransmit?.Count > 0;
            }
        }
    }

    /// <summary>Whether the session already has a subscription with this exact filter.</summary>
    public bool HasSubscription(string filter)
    {
        lock (Gate)
        {
            return _subscriptions?.ContainsKey(filter) ?? false;
        }
    }

    public void AddSubscription(TopicSubscription subscription, out bool existed)
    {
        lock (Gate)
        {
            var subscriptions = _subscriptions ??= new Dictionary<string, TopicSubscription>(StringComparer.Ordinal);
            existed = subscriptions.ContainsKey(subscription.Filter);
            subscriptions[subscription.Filter] = subscription;
            _subscriptionCount = subscriptions.Count;
        }
    }

    public bool RemoveSubscription(string filter)
    {
        lock (Gate)
        {
            var removed = _subscriptions?.Remove(filter) ?? false;
            _subscriptionCount = _subscriptions?.Count ?? 0;
            return removed;
        }
    }

    public TopicSubscription[] GetSubscriptions()
    {
        lock (Gate)
        {
            return _subscriptions is null ? [] : [.. _subscriptions.Values];
        }
    }

    private ushort NextPacketId()
    {
        // Skip 0 and ids still in use (§2.2.1).
        do
        {
            _nextPacketId = (ushort)(_nextPacketId == ushort.MaxValue ? 1 : _nextPacketId + 1);
        }
        while ((_inflight?.ContainsKey(_nextPacketId) ?? false) || (_awaitingPubComp?.ContainsKey(_nextPacketId) ?? false));

        return _nextPacketId;
    }

    private readonly record struct Inflight(Outgoing Item, long Sequence);
}
