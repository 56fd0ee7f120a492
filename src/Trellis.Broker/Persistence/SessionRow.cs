namespace Trellis.Broker.Persistence;

/// <summary>
/// A persistent session's row as written: taken when the write is asked for, so later changes to
/// the live session cannot race the writer. <see cref="DisconnectedAtMs"/> is 0 while connected.
/// </summary>
internal sealed record SessionRow(string ClientId, byte ProtocolLevel, uint ExpirySeconds, long DisconnectedAtMs, string SubscriptionsJson, string? Owner);
