namespace Trellis.Broker.Protocol;

/// <summary>An MQTT 5 user property (§3.3.2.3.7).</summary>
internal readonly record struct UserProperty(string Name, string Value);
