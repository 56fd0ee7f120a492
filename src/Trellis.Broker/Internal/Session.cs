using Trellis.Broker.Protocol;

namespace Trellis.Broker.Internal;

/// <summary>
/// MQTT session state (MQTT 5 §4.1): subscriptions, the outbound queue, QoS 1/2 in flight both
/// ways. Outlives its connection when the session is persistent. All mutable state is guarded by
/// <see cref="_lock"/>; the connection's writer loop is the only consumer of the queue.
/// </summary>
internal sealed class Session(string clientId)
{
    private readonly Lock _lock = new();
    private readonly Queue<Outgoing> _queue = new();
    // QoS 1/2 state is created on first use: a QoS 0 or idle session carries none of it.
    private Dictionary<ushort, Inflight>? _inflight;
    private HashSet<ushort>? _awaitingPubComp;
    private HashSet<ushort>? _incomingQos2;
    private readonly Dictionary<string, TopicSubscription> _subscriptions = new(StringComparer.Ordinal);
    private Queue<(ushort Id, Outgoing Item)>? _retransmit;
    private System.Collections.Concurrent.ConcurrentDictionary<string, bool>? _receiveAllowed;
    private int _receiveCacheCount;
    private ushort _nextPacketId;
    private long _sendSequence;
    private int _queueCount;
    private MqttConnection? _connection;

    public string ClientId { get; } = clientId;

    /// <summary>Seconds the session outlives its connection; 0 = ends with it.</summary>
    public uint ExpirySeconds { get; set; }

    public byte ProtocolLevel { get; set; } = 4;

    public long DisconnectedAtMs { get; set; }

    /// <summary>Who the session belongs to; used for Receive checks even while offline.</summary>
    public ClientPrincipal? Principal { get; set; }

    public MqttConnection? Connection
    {
        get => Volatile.Read(ref _connection);
        set => Volatile.Write(ref _connection, value);
    }

    public int QueueCount => Volatile.Read(ref _queueCount);

    public long Dropped;

    /// <summary>Set once per overflow episode so the drop is logged once, not per message.</summary>
    public bool OverflowLogged;

    /// <summary>Journal sequence of the newest message written for crash recovery while offline.</summary>
    public long JournalSeq;

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
        lock (_lock)
        {
            _drained ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _drained.Task;
        }
    }

    public void SignalDrained()
    {
        TaskCompletionSource? waiter;
        lock (_lock)
        {
            waiter = _drained;
            _drained = null;
        }

        waiter?.TrySetResult();
    }

    public bool TryEnqueue(in Outgoing item, int maxQueued)
    {
        lock (_lock)
        {
            if (_queue.Count >= maxQueued)
            {
                Dropped++;
                return false;
            }

            if (_queue.Count == 0)
            {
                LastProgressMs = Environment.TickCount64;
            }

            _queue.Enqueue(item);
            _queueCount = _queue.Count;
            OverflowLogged = false;
            return true;
        }
    }

    /// <summary>
    /// Takes what may be sent now: first retransmissions after a reconnect, then queued messages
    /// while the QoS 1/2 window has room. QoS &gt; 0 messages get a packet id and enter the window.
    /// </summary>
    public int TakeBatch(Span<(ushort PacketId, Outgoing Item, bool Dup)> batch, int window, long nowMs)
    {
        var count = 0;
        lock (_lock)
        {
            while (count < batch.Length && _retransmit is not null && _retransmit.TryDequeue(out var again))
            {
                batch[count++] = (again.Id, again.Item, true);
            }

            while (count < batch.Length && _queue.TryPeek(out var next))
            {
                if (next.Qos > 0 && (_inflight?.Count ?? 0) + (_awaitingPubComp?.Count ?? 0) >= window)
                {
                    break;
                }

                _queue.Dequeue();
                if (next.Message.IsExpired(nowMs))
                {
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

            _queueCount = _queue.Count;
            return count;
        }
    }

    /// <summary>PUBACK for a QoS 1 delivery. Returns false when the id was not in flight.</summary>
    public bool Acknowledge(ushort packetId)
    {
        lock (_lock)
        {
            return _inflight is not null && _inflight.TryGetValue(packetId, out var entry) && entry.Item.Qos == 1 && _inflight.Remove(packetId);
        }
    }

    /// <summary>Drops an in-flight delivery the client can never take (larger than its maximum packet size).</summary>
    public void Forget(ushort packetId)
    {
        lock (_lock)
        {
            _inflight?.Remove(packetId);
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
        lock (_lock)
        {
            if (_inflight is not null && _inflight.TryGetValue(packetId, out var entry) && entry.Item.Qos == 2)
            {
                _inflight.Remove(packetId);
                (_awaitingPubComp ??= []).Add(packetId);
                return true;
            }

            return _awaitingPubComp?.Contains(packetId) ?? false;
        }
    }

    public bool Completed(ushort packetId)
    {
        lock (_lock)
        {
            return _awaitingPubComp?.Remove(packetId) ?? false;
        }
    }

    /// <summary>Incoming QoS 2: true the first time a packet id is seen (route it), false for a resend.</summary>
    public bool BeginIncomingQos2(ushort packetId)
    {
        lock (_lock)
        {
            return (_incomingQos2 ??= []).Add(packetId);
        }
    }

    public bool ReleaseIncomingQos2(ushort packetId)
    {
        lock (_lock)
        {
            return _incomingQos2?.Remove(packetId) ?? false;
        }
    }

    /// <summary>On reconnect to an existing session: resend unacknowledged messages with DUP, and PUBRELs (§4.4).</summary>
    public IReadOnlyList<ushort> PrepareResume()
    {
        lock (_lock)
        {
            _retransmit?.Clear();
            if (_inflight is not null)
            {
                foreach (var (id, entry) in _inflight.OrderBy(e => e.Value.Sequence))
                {
                    (_retransmit ??= new()).Enqueue((id, entry.Item));
                }
            }

            return _awaitingPubComp is null ? [] : [.. _awaitingPubComp];
        }
    }

    public bool HasPendingDeliveries
    {
        get
        {
            lock (_lock)
            {
                return _queue.Count > 0 || _inflight?.Count > 0 || _retransmit?.Count > 0;
            }
        }
    }

    public void AddSubscription(TopicSubscription subscription, out bool existed)
    {
        lock (_lock)
        {
            existed = _subscriptions.ContainsKey(subscription.Filter);
            _subscriptions[subscription.Filter] = subscription;
        }
    }

    public bool RemoveSubscription(string filter)
    {
        lock (_lock)
        {
            return _subscriptions.Remove(filter);
        }
    }

    public TopicSubscription[] GetSubscriptions()
    {
        lock (_lock)
        {
            return [.. _subscriptions.Values];
        }
    }

    /// <summary>Everything still owed to the client, in order, for persistence across a restart.</summary>
    public List<Outgoing> PendingMessages()
    {
        lock (_lock)
        {
            var pending = _inflight is null ? [] : _inflight.OrderBy(e => e.Value.Sequence).Select(e => e.Value.Item).ToList();
            pending.AddRange(_queue.Where(o => o.Qos > 0));
            return pending;
        }
    }

    private ushort NextPacketId()
    {
        // Skip 0 and ids still in use (§2.2.1).
        do
        {
            _nextPacketId = (ushort)(_nextPacketId == ushort.MaxValue ? 1 : _nextPacketId + 1);
        }
        while ((_inflight?.ContainsKey(_nextPacketId) ?? false) || (_awaitingPubComp?.Contains(_nextPacketId) ?? false));

        return _nextPacketId;
    }

    private readonly record struct Inflight(Outgoing Item, long Sequence);
}
