using Trellis.Broker.Protocol;

namespace Trellis.Broker.Internal;

/// <summary>One session's subscription as held in the index.</summary>
internal sealed record Subscriber(Session Session, TopicSubscription Options)
{
    /// <summary>The subscription's identifier as the array a delivery carries, made once per subscription rather than per message.</summary>
    public uint[]? SubscriptionIds { get; } = Options.SubscriptionIdentifier is { } id ? [id] : null;
}
