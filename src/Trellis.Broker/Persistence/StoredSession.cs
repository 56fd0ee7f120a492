using Trellis.Broker.Internal;

namespace Trellis.Broker.Persistence;

/// <summary>A persistent session as read back from the database.</summary>
internal sealed record StoredSession(string ClientId, byte ProtocolLevel, uint ExpirySeconds, long DisconnectedAtMs, List<StoredSubscription> Subscriptions, List<Outgoing> Messages);
