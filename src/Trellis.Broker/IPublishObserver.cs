namespace Trellis.Broker;

/// <summary>
/// Sees every message the broker routes (client publishes, server publishes such as lifecycle
/// events, and Basic Ingest publishes on <c>$aws/rules/…</c>, which are not routed to subscribers).
/// Called on the publisher's packet thread: <see cref="Wants"/> must be cheap and
/// <see cref="OnPublished"/> must only hand the message over (the rules engine queues it).
/// </summary>
public interface IPublishObserver
{
    bool Wants(string topic);

    void OnPublished(in PublishedMessage message);
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
