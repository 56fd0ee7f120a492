using Trellis.Broker.Protocol;

namespace Trellis.Broker.Internal;

/// <summary>One session's subscription as held in the index.</summary>
internal sealed record Subscriber(Session Session, TopicSubscription Options);
