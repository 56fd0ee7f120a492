namespace Trellis.Broker;

/// <summary>
/// Sees every message the broker routes (client publishes, server publishes such as lifecycle
/// events, and Basic Ingest publishes on <c>$aws/rules/…</c>, which are not routed to subscribers).
/// Called on the publisher's packet thread: <see cref="Wants"/> must be cheap and
/// <see cref="TryObserve"/> must only hand the message over (the rules engine queues it).
/// </summary>
public interface IPublishObserver
{
    bool Wants(string topic);

    /// <summary>
    /// Takes the message, or, only when <paramref name="mayRefuse"/> is set (a client's publish),
    /// refuses it because the observer is full. The broker then stops reading from that client,
    /// calls <see cref="ObserveAsync"/>, and acknowledges the publish only after it completes.
    /// </summary>
    bool TryObserve(in PublishedMessage message, bool mayRefuse);

    /// <summary>Takes the message once there is room.</summary>
    ValueTask ObserveAsync(PublishedMessage message, CancellationToken cancellationToken);
}

/// <summary>A routed message as an observer sees it. The payload is immutable and may be kept.</summary>
public readonly record struct PublishedMessage(
    string Topic,
    ReadOnlyMemory<byte> Payload,
    byte Qos,
    string? ClientId,
    string? Principal,
    long ReceivedAtMs,
    string? Origin);
