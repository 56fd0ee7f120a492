using System.ComponentModel.DataAnnotations;

namespace Trellis.Broker;

/// <summary>MQTT broker settings, bound from the <c>Broker</c> configuration section.</summary>
public sealed class BrokerOptions
{
    /// <summary>Largest MQTT packet accepted from a client, in bytes (default 128 KiB, as AWS IoT).</summary>
    [Range(64, 268_435_455)]
    public int MaxPacketBytes { get; set; } = 128 * 1024;

    /// <summary>Messages queued for one client beyond which new ones are dropped and counted.</summary>
    [Range(1, 10_000_000)]
    public int MaxQueuedMessagesPerClient { get; set; } = 10_000;

    /// <summary>
    /// Seconds a subscriber whose queue is past the back-pressure depth may take nothing from it
    /// while publishers to it wait; after that it is marked stalled, publishers go on and its queue
    /// fills up to <see cref="MaxQueuedMessagesPerClient"/> (then drops and counts), so one stuck
    /// client never holds the others back for long.
    /// </summary>
    [Range(1, 3600)]
    public int SubscriberStallSeconds { get; set; } = 2;

    /// <summary>QoS 1/2 messages in flight to one client at once (further capped by the client's Receive Maximum).</summary>
    [Range(1, 65_535)]
    public int MaxInflightPerClient { get; set; } = 100;

    /// <summary>
    /// QoS 1/2 publishes an MQTT 5 client may have unacknowledged towards the broker (announced in
    /// CONNACK as Receive Maximum); a client that sends more is disconnected with 0x93.
    /// </summary>
    [Range(1, 65_535)]
    public int ReceiveMaximum { get; set; } = 1024;

    /// <summary>Seconds a new connection may take to send CONNECT before it is closed (on TLS, also the time its handshake may take).</summary>
    [Range(1, 3600)]
    public int ConnectTimeoutSeconds { get; set; } = 10;

    /// <summary>Seconds a started packet may take to arrive whole before the connection is closed.</summary>
    [Range(1, 3600)]
    public int IncompletePacketTimeoutSeconds { get; set; } = 30;

    /// <summary>Session expiry applied to MQTT 3.1.1 clean-session=0 clients (AWS IoT: 1 hour).</summary>
    [Range(0, uint.MaxValue)]
    public long PersistentSessionExpirySeconds { get; set; } = 3600;

    /// <summary>Upper bound on the session expiry an MQTT 5 client may ask for (default 7 days).</summary>
    [Range(0, uint.MaxValue)]
    public long MaxSessionExpirySeconds { get; set; } = 7 * 24 * 3600;

    /// <summary>Topic aliases an MQTT 5 client may use towards the broker.</summary>
    [Range(0, 65_535)]
    public int TopicAliasMaximum { get; set; } = 64;

    /// <summary>
    /// Threads that serve plain-TCP MQTT connections, each with its own epoll loop (Linux); 0 uses
    /// the runtime's socket engine instead (one thread-pool dispatch per socket event). Default:
    /// one per CPU the process may use (<see cref="DefaultEventLoops"/>).
    /// </summary>
    [Range(0, 64)]
    public int EventLoops { get; set; } = DefaultEventLoops;

    /// <summary>
    /// One event loop per CPU available to the process (its cgroup's quota included), at most 64.
    /// Connections are spread over the loops as they connect, and a loop sends the deliveries it
    /// makes itself, so the loops share the routing work without a hand-off between them.
    /// </summary>
    public static int DefaultEventLoops => Math.Clamp(Environment.ProcessorCount, 1, 64);

    /// <summary>
    /// Topic filters one client (session) may hold; a SUBSCRIBE beyond it is refused for the new
    /// filters (0x97 Quota exceeded on MQTT 5, 0x80 on 3.1.1). AWS IoT allows 50 per connection.
    /// </summary>
    [System.ComponentModel.DataAnnotations.Range(1, 10_000_000)]
    public int MaxSubscriptionsPerClient { get; set; } = 1000;

    /// <summary>Accept clients without credentials under an allow-all policy (development only).</summary>
    public bool AllowAnonymous { get; set; }

    /// <summary>
    /// Let API keys used as MQTT credentials connect with a registered thing's name as client id
    /// (off: refused with 0x87, so an operator cannot pass for a device or kick one off). Even on,
    /// an API key never takes over or resumes a session a device holds.
    /// </summary>
    public bool OperatorsMayUseThingClientIds { get; set; }

    /// <summary>
    /// After a burst of connects or disconnects, once the connection count has held still this many
    /// seconds and differs from the count at the last settle by a quarter (at least 1 000), compact
    /// the heap once and give its free room back to the system (a blocking full collection: tens of
    /// milliseconds per 10 000 connections). At most once every 10 s; 0 turns it off.
    /// </summary>
    [Range(0, 3600)]
    public int SettleHeapQuietSeconds { get; set; } = 2;

    /// <summary>AWS region used in resource ARNs for policy evaluation.</summary>
    public string Region { get; set; } = "us-east-1";

    /// <summary>AWS account id used in resource ARNs for policy evaluation.</summary>
    public string AccountId { get; set; } = "000000000000";
}
