using Trellis.Broker.Protocol;

namespace Trellis.Broker.Internal;

/// <summary>
/// A message waiting to be sent to one session, with the QoS and flags of that delivery: every
/// Subscription Identifier of the session's subscriptions that matched (MQTT 5 §3.3.4), and the
/// journal sequence under which it is kept on disk until the client acknowledges it (0: not kept).
/// </summary>
internal readonly record struct Outgoing(MqttMessage Message, byte Qos, bool Retain, uint[]? SubscriptionIds, long JournalSeq = 0);
