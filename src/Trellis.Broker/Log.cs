using Microsoft.Extensions.Logging;

namespace Trellis.Broker;

/// <summary>Broker log events: ids 1000–1999.</summary>
internal static partial class Log
{
    [LoggerMessage(1001, LogLevel.Information, "Client {ClientId} connected from {Remote} ({Listener}, MQTT {Version}, principal {Principal})")]
    public static partial void ClientConnected(this ILogger logger, string clientId, string remote, string listener, string version, string principal);

    [LoggerMessage(1002, LogLevel.Information, "Client {ClientId} disconnected: {Reason}")]
    public static partial void ClientDisconnected(this ILogger logger, string clientId, string reason);

    [LoggerMessage(1003, LogLevel.Warning, "Refused connect from client '{ClientId}' at {Remote}: {Reason}")]
    public static partial void ConnectRejected(this ILogger logger, string clientId, string remote, string reason);

    [LoggerMessage(1004, LogLevel.Warning, "Closed connection of client '{ClientId}' at {Remote}: protocol violation: {Message}")]
    public static partial void ProtocolViolation(this ILogger logger, string clientId, string remote, string message);

    [LoggerMessage(1005, LogLevel.Warning, "Closed connection of client '{ClientId}' at {Remote}: packet of {Size} bytes exceeds Broker:MaxPacketBytes={Max}")]
    public static partial void PacketTooLarge(this ILogger logger, string clientId, string remote, long size, int max);

    [LoggerMessage(1006, LogLevel.Warning, "Closed connection from {Remote}: first packet was {Type}, not CONNECT")]
    public static partial void FirstPacketNotConnect(this ILogger logger, string remote, string type);

    [LoggerMessage(1007, LogLevel.Information, "Denied publish by client {ClientId} to '{Topic}': its policies do not allow iot:Publish there")]
    public static partial void PublishDenied(this ILogger logger, string clientId, string topic);

    [LoggerMessage(1008, LogLevel.Information, "Denied subscription by client {ClientId} to '{Filter}': its policies do not allow iot:Subscribe there")]
    public static partial void SubscribeDenied(this ILogger logger, string clientId, string filter);

    [LoggerMessage(1019, LogLevel.Warning, "Refused subscription by client {ClientId} to '{Filter}': it already holds {Limit} topic filters (Broker:MaxSubscriptionsPerClient). Use wildcards, or raise the limit")]
    public static partial void SubscriptionQuotaExceeded(this ILogger logger, string clientId, string filter, int limit);

    [LoggerMessage(1009, LogLevel.Warning, "Queue of client {ClientId} is full ({Limit} messages): dropping new deliveries until it catches up ({Dropped} dropped so far). Raise Broker:MaxQueuedMessagesPerClient or speed up the subscriber.")]
    public static partial void QueueFull(this ILogger logger, string clientId, int limit, long dropped);

    [LoggerMessage(1010, LogLevel.Warning, "Connection of client '{ClientId}' at {Remote} failed: {Message}")]
    public static partial void ConnectionFault(this ILogger logger, string clientId, string remote, string message);

    [LoggerMessage(1011, LogLevel.Information, "Closed connection of client '{ClientId}' at {Remote}: {Reason}")]
    public static partial void TimedOut(this ILogger logger, string clientId, string remote, string reason);

    [LoggerMessage(1012, LogLevel.Warning, "Disconnected client {ClientId}: {Reason}")]
    public static partial void PrincipalRevoked(this ILogger logger, string clientId, string reason);

    [LoggerMessage(1013, LogLevel.Information, "Restored {Sessions} persistent sessions ({Messages} queued messages) and {Retained} retained messages from the data folder")]
    public static partial void StateRestored(this ILogger logger, int sessions, int messages, int retained);

    [LoggerMessage(1014, LogLevel.Information, "Saved {Sessions} persistent sessions ({Messages} queued messages) to the data folder")]
    public static partial void StateSaved(this ILogger logger, int sessions, int messages);

    [LoggerMessage(1015, LogLevel.Information, "Will message of client {ClientId} was not published: its policies do not allow publishing to '{Topic}'")]
    public static partial void WillDenied(this ILogger logger, string clientId, string topic);

    [LoggerMessage(1016, LogLevel.Error, "A service request of client {ClientId} failed: {Reason}. The request was acknowledged without a reply; this is a bug, please report it with this log line.")]
    public static partial void ServiceRequestFailed(this ILogger logger, string clientId, string reason);

    [LoggerMessage(1017, LogLevel.Error, "Writing persistent sessions to sessions.db in the data folder failed: {Reason}. Publishers to persistent sessions get no acknowledgement until it works again (they resend); check the disk's free space and the folder's permissions.")]
    public static partial void JournalFailed(this ILogger logger, string reason);

    [LoggerMessage(1018, LogLevel.Warning, "Dropped {Dropped} stored session messages at start-up: more were queued for a client than Broker:MaxQueuedMessagesPerClient={Limit} now allows. Raise the limit before restarting to keep them.")]
    public static partial void RestoredOverLimit(this ILogger logger, int dropped, int limit);

    [LoggerMessage(1022, LogLevel.Debug, "TLS handshake with {Remote} ({Listener}) failed: {Reason}")]
    public static partial void TlsHandshakeFailed(this ILogger logger, string remote, string listener, string reason);

    [LoggerMessage(1020, LogLevel.Warning, "TLS handshake from {Source} on {Listener} refused: {Advice} ({Reason}). Logged once per source and cause every 10 minutes; all are counted in trellis_broker_tls_refused_total")]
    public static partial void TlsRefused(this ILogger logger, string source, string listener, string reason, string advice);

    [LoggerMessage(1021, LogLevel.Information, "Connections held at {Connections} after a burst: compacted the heap in {Milliseconds} ms, resident memory {BeforeMiB} -> {AfterMiB} MiB (Broker:SettleHeapQuietSeconds=0 turns this off)")]
    public static partial void HeapSettled(this ILogger logger, int connections, long beforeMiB, long afterMiB, long milliseconds);
}
