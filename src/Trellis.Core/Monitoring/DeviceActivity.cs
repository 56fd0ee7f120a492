namespace Trellis.Core.Monitoring;

/// <summary>
/// What one client id did, as the broker sees it: cumulative counts (never reset, so any number of
/// readers can take differences over their own windows) and the largest and smallest message since
/// the last <see cref="TakeMessageSizes"/>. Written by the connection's packet threads with atomic
/// operations; read by the anomaly detector (Device Defender's cloud-side metrics).
/// </summary>
public sealed class DeviceActivity(string clientId, long createdMs)
{
    private long _messagesSent;
    private long _messagesReceived;
    private long _authorizationFailures;
    private long _connectionAttempts;
    private long _disconnects;
    private int _largest = -1;
    private int _smallest = int.MaxValue;
    private long _lastActiveMs = createdMs;
    private string? _sourceAddress;
    private long _connects;
    private int _open;

    public string ClientId { get; } = clientId;

    /// <summary>When these counters were made (Unix ms): everything they hold happened after.</summary>
    public long CreatedMs { get; } = createdMs;

    /// <summary>PUBLISH packets the device sent (aws:num-messages-sent).</summary>
    public long MessagesSent => Volatile.Read(ref _messagesSent);

    /// <summary>PUBLISH packets written to the device (aws:num-messages-received).</summary>
    public long MessagesReceived => Volatile.Read(ref _messagesReceived);

    /// <summary>Refused connects, publishes and subscriptions (aws:num-authorization-failures).</summary>
    public long AuthorizationFailures => Volatile.Read(ref _authorizationFailures);

    /// <summary>CONNECT packets received, refused or not (aws:num-connection-attempts).</summary>
    public long ConnectionAttempts => Volatile.Read(ref _connectionAttempts);

    /// <summary>Connections that ended after a CONNACK (aws:num-disconnects).</summary>
    public long Disconnects => Volatile.Read(ref _disconnects);

    /// <summary>The address of the last connection attempt (aws:source-ip-address).</summary>
    public string? SourceAddress => Volatile.Read(ref _sourceAddress);

    /// <summary>How many attempts set <see cref="SourceAddress"/>: a reader sees a new datapoint when it moves.</summary>
    public long AddressVersion => Volatile.Read(ref _connects);

    /// <summary>When anything was last counted (Unix ms): idle entries are forgotten.</summary>
    public long LastActiveMs => Volatile.Read(ref _lastActiveMs);

    /// <summary>On the publisher's packet path: one atomic add, and a compare for the sizes. No clock is read (an entry with an open connection is never idle).</summary>
    public void MessageSent(int payloadBytes)
    {
        Interlocked.Increment(ref _messagesSent);
        if (payloadBytes > Volatile.Read(ref _largest))
        {
            Raise(ref _largest, payloadBytes);
        }

        if (payloadBytes < Volatile.Read(ref _smallest))
        {
            Lower(ref _smallest, payloadBytes);
        }
    }

    public void MessagesDelivered(int count) => Interlocked.Add(ref _messagesReceived, count);

    public void AuthorizationFailed(long nowMs)
    {
        Interlocked.Increment(ref _authorizationFailures);
        Touch(nowMs);
    }

    public void ConnectionAttempted(string sourceAddress, long nowMs)
    {
        Interlocked.Increment(ref _connectionAttempts);
        Volatile.Write(ref _sourceAddress, sourceAddress);
        Interlocked.Increment(ref _connects);
        Touch(nowMs);
    }

    /// <summary>Connections open now (accepted and not yet ended): an entry with one is never forgotten.</summary>
    public int OpenConnections => Volatile.Read(ref _open);

    public void Connected(long nowMs)
    {
        Interlocked.Increment(ref _open);
        Touch(nowMs);
    }

    public void Disconnected(long nowMs)
    {
        Interlocked.Decrement(ref _open);
        Interlocked.Increment(ref _disconnects);
        Touch(nowMs);
    }

    /// <summary>The largest and smallest payload since the last call (null when no message was sent), and starts again.</summary>
    public (int Largest, int Smallest)? TakeMessageSizes()
    {
        var largest = Interlocked.Exchange(ref _largest, -1);
        var smallest = Interlocked.Exchange(ref _smallest, int.MaxValue);
        return largest < 0 ? null : (largest, Math.Min(smallest, largest));
    }

    private void Touch(long nowMs)
    {
        if (Volatile.Read(ref _lastActiveMs) < nowMs)
        {
            Volatile.Write(ref _lastActiveMs, nowMs);
        }
    }

    private static void Raise(ref int field, int value)
    {
        var seen = Volatile.Read(ref field);
        while (value > seen)
        {
            var was = Interlocked.CompareExchange(ref field, value, seen);
            if (was == seen)
            {
                return;
            }

            seen = was;
        }
    }

    private static void Lower(ref int field, int value)
    {
        var seen = Volatile.Read(ref field);
        while (value < seen)
        {
            var was = Interlocked.CompareExchange(ref field, value, seen);
            if (was == seen)
            {
                return;
            }

            seen = was;
        }
    }
}

/// <summary>Hands the broker the counters of a client id (made on first use).</summary>
public interface IDeviceActivityTable
{
    DeviceActivity For(string clientId);
}
