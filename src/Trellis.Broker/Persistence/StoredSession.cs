using Trellis.Broker.Internal;

namespace Trellis.Broker.Persistence;

/// <summary>A persistent session as read back from the database, with the messages it is owed in order.</summary>
internal sealed record StoredSession(string ClientId, byte ProtocolLevel, uint ExpirySeconds, long DisconnectedAtMs, string? Owner, List<StoredSubscription> Subscriptions, List<Outgoing> Messages);
