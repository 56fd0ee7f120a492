using Trellis.Broker.Protocol;

namespace Trellis.Broker.Persistence;

/// <summary>A subscription's JSON form in the sessions table. Field names are stored: never rename them.</summary>
internal sealed record StoredSubscription(string Filter, byte Qos, bool NoLocal, bool RetainAsPublished, byte RetainHandling, uint? SubscriptionId)
{
    public static StoredSubscription From(TopicSubscription s) => new(s.Filter, s.MaxQos, s.NoLocal, s.RetainAsPublished, s.RetainHandling, s.SubscriptionIdentifier);

    public TopicSubscription ToSubscription() => new(Filter, Qos, NoLocal, RetainAsPublished, RetainHandling, SubscriptionId);
}
