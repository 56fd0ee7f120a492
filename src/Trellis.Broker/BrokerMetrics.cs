using System.Diagnostics.Metrics;

namespace Trellis.Broker;

/// <summary>Broker counters, exported through the <c>Trellis.Broker</c> meter and readable as a snapshot.</summary>
public sealed class BrokerMetrics : IDisposable
{
    private readonly Meter _meter;
    private long _received;
    private long _sent;
    private long _dropped;
    private long _connections;
    private long _deniedPublishes;
    private long _repeatedPublishes;
    private readonly Counter<long> _tlsRefused;

    /// <summary>
    /// The meter comes from the server's <paramref name="meters"/> when there is one, so that it
    /// belongs to that server: a process that hosts two servers (an embedding program, the tests)
    /// exports each one's counters from its own <c>/metrics</c>, and one server's end does not end
    /// the other's series.
    /// </summary>
    public BrokerMetrics(IMeterFactory? meters = null)
    {
        _meter = meters?.Create("Trellis.Broker") ?? new Meter("Trellis.Broker");
        _meter.CreateObservableCounter("trellis.broker.messages.received", () => Volatile.Read(ref _received), description: "PUBLISH packets received from clients");
        _meter.CreateObservableCounter("trellis.broker.messages.sent", () => Volatile.Read(ref _sent), description: "PUBLISH packets written to clients");
        _meter.CreateObservableCounter("trellis.broker.messages.dropped", () => Volatile.Read(ref _dropped), description: "Deliveries dropped because a client's queue was full");
        _meter.CreateObservableCounter("trellis.broker.publishes.denied", () => Volatile.Read(ref _deniedPublishes), description: "PUBLISH packets refused by policy");
        _meter.CreateObservableCounter("trellis.broker.publishes.repeated", () => Volatile.Read(ref _repeatedPublishes), description: "Numbered PUBLISH packets (user property trellis-seq) recognised as repeats and not routed again");
        _tlsRefused = _meter.CreateCounter<long>("trellis.broker.tls.refused", description: "TLS handshakes refused, by kind (no-certificate, unknown-ca, expired, not-yet-valid, server-not-trusted, not-tls, timeout, closed, other)");
        _meter.CreateObservableUpDownCounter("trellis.broker.connections", () => Volatile.Read(ref _connections), description: "Open MQTT connections");
    }

    public long MessagesReceived => Volatile.Read(ref _received);

    public long MessagesSent => Volatile.Read(ref _sent);

    public long MessagesDropped => Volatile.Read(ref _dropped);

    public long Connections => Volatile.Read(ref _connections);

    public long DeniedPublishes => Volatile.Read(ref _deniedPublishes);

    public long RepeatedPublishes => Volatile.Read(ref _repeatedPublishes);

    internal void Received() => Interlocked.Increment(ref _received);

    internal void Sent(int count) => Interlocked.Add(ref _sent, count);

    internal void Dropped(int count = 1) => Interlocked.Add(ref _dropped, count);

    internal void Denied() => Interlocked.Increment(ref _deniedPublishes);

    internal void Repeated() => Interlocked.Increment(ref _repeatedPublishes);

    /// <summary>One refused TLS handshake of <paramref name="kind"/>.</summary>
    public void TlsRefused(string kind) => _tlsRefused.Add(1, new KeyValuePair<string, object?>("reason", kind));

    internal void ConnectionOpened() => Interlocked.Increment(ref _connections);

    internal void ConnectionClosed() => Interlocked.Decrement(ref _connections);

    public void Dispose() => _meter.Dispose();
}
