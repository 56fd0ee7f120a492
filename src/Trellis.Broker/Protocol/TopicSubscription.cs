namespace Trellis.Broker.Protocol;

/// <summary>One filter of a SUBSCRIBE with its options (MQTT 5 §3.8.3.1).</summary>
internal sealed record TopicSubscription(
    string Filter,
    byte MaxQos,
    bool NoLocal = false,
    bool RetainAsPublished = false,
    byte RetainHandling = 0,
    uint? SubscriptionIdentifier = null);
