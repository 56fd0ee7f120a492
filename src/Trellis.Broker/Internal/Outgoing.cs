using Trellis.Broker.Protocol;

namespace Trellis.Broker.Internal;

/// <summary>A message waiting to be sent to one session, with the QoS and flags of that delivery.</summary>
internal readonly record struct Outgoing(MqttMessage Message, byte Qos, bool Retain, uint? SubscriptionId);
