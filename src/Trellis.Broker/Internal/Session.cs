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
    private readonly Dictionary<ushort, Inflight> _inflight = [];
    private readonly HashSet<ushort> _awaitingPubComp = [];
    private readonly HashSet<ushort> _incomingQos2 = [];
    private readonly Dictionary<string, TopicSubscription> _subscriptions = new(StringComparer.Ordinal);
    private readonly Queue<(ushort Id, Outgoing Item)> _retransmit = new();
    private System.Collections.Concurrent.ConcurrentDictionary<string, bool> _receiveAllowed = new(StringComparer.Ordinal);
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

    /// <summary>Messages handed to the writer so far; publishers use it to tell a slow subscriber from a stuck one.</summary>
    public long SentCount;

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
    public int TakeBatch(List<(ushort PacketId, Outgoing Item, bool Dup)> batch, int window, int max, long nowMs)
    {
        lock (_lock)
        {
            while (batch.Count < max && _retransmit.TryDequeue(out var again))
            {
                batch.Add((again.Id, again.Item, true));
            }

            while (batch.Count < max && _queue.TryPeek(out var next))
            {
                if (next.Qos > 0 && _inflight.Count + _awaitingPubComp.Count >= window)
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
                    _inflight[id] = new Inflight(next, ++_sendSequence);
                }

                batch.Add((id, next, false));
            }

            _queueCount = _queue.Count;
            return batch.Count;
        }
    }

    /// <summary>PUBACK for a QoS 1 delivery. Returns false when the id was not in flight.</summary>
    public bool Acknowledge(ushort packetId)
    {
        lock (_lock)
        {
            return _inflight.TryGetValue(packetId, out var entry) && entry.Item.Qos == 1 && _inflight.Remove(packetId);
        }
    }

    /// <summary>Drops an in-flight delivery the client can never take (larger than its maximum packet size).</summary>
    public void Forget(ushort packetId)
    {
        lock (_lock)
        {
            _inflight.Remove(packetId);
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

        var cache = _receiveAllowed;
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
        _receiveAllowed = new System.Collections.Concurrent.ConcurrentDictionary<string, bool>(StringComparer.Ordinal);
        Volatile.Write(ref _receiveCacheCount, 0);
    }

    /// <summary>PUBREC for a QoS 2 delivery: the message is now the client's; a PUBREL follows.</summary>
    public bool Received(ushort packetId)
    {
        lock (_lock)
        {
            if (_inflight.TryGetValue(packetId, out var entry) && entry.Item.Qos == 2)
            {
                _inflight.Remove(packetId);
                _awaitingPubComp.Add(packetId);
                return true;
            }

            return _awaitingPubComp.Contains(packetId);
        }
    }

    public bool Completed(ushort packetId)
    {
        lock (_lock)
        {
            return _awaitingPubComp.Remove(packetId);
        }
    }

    /// <summary>Incoming QoS 2: true the first time a packet id is seen (route it), false for a resend.</summary>
    public bool BeginIncomingQos2(ushort packetId)
    {
        lock (_lock)
        {
            return _incomingQos2.Add(packetId);
        }
    }

    public bool ReleaseIncomingQos2(ushort packetId)
    {
        lock (_lock)
        {
            return _incomingQos2.Remove(packetId);
        }
    }

    /// <summary>On reconnect to an existing session: resend unacknowledged messages with DUP, and PUBRELs (§4.4).</summary>
    public IReadOnlyList<ushort> PrepareResume()
    {
        lock (_lock)
        {
            _retransmit.Clear();
            foreach (var (id, entry) in _inflight.OrderBy(e => e.Value.Sequence))
            {
                _retransmit.Enqueue((id, entry.Item));
            }

            return [.. _awaitingPubComp];
        }
    }

    public bool HasPendingDeliveries
    {
        get
        {
            lock (_lock)
            {
                return _queue.Count > 0 || _inflight.Count > 0 || _retransmit.Count > 0;
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
            var pending = _inflight.OrderBy(e => e.Value.Sequence).Select(e => e.Value.Item).ToList();
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
        while (_inflight.ContainsKey(_nextPacketId) || _awaitingPubComp.Contains(_nextPacketId));

        return _nextPacketId;
    }

    private readonly record struct Inflight(Outgoing Item, long Sequence);
}
