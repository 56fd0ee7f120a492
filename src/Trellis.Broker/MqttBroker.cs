using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Trellis.Broker.Internal;
using Trellis.Broker.Persistence;
using Trellis.Broker.Protocol;

namespace Trellis.Broker;

/// <summary>
/// The MQTT broker: sessions, the subscription index, retained messages, routing with policy
/// checks on every publish, subscription and delivery. Transports hand it connections through
/// <see cref="RunConnectionAsync"/>.
/// </summary>
public sealed partial class MqttBroker : IHostedService, IAsyncDisposable
{
    private readonly ConcurrentDictionary<MqttConnection, byte> _connections = new();
    private readonly PriorityQueue<MqttConnection, long> _keepAlives = new();
    private readonly Lock _keepAliveLock = new();
    private readonly Dictionary<string, Session> _sessions = new(StringComparer.Ordinal);
    private readonly Lock _sessionsLock = new();
    private readonly SubscriptionIndex _index = new();
    private readonly ConcurrentDictionary<string, MqttMessage> _retained = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, CancellationTokenSource> _pendingWills = new(StringComparer.Ordinal);
    private readonly BrokerStore? _store;
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _stopping = new();
    private Task? _sweeper;
    private Task? _keepAliveWatcher;
    private long _routeStamp;
    private long _eventVersion;
    private IServerTopicHandler[] _handlers = [];
    private IPublishObserver? _observer;
    private IConnectivityObserver? _connectivity;

    public MqttBroker(IOptions<BrokerOptions> options, IBrokerAuthenticator authenticator, ILogger<MqttBroker> logger, TimeProvider time, BrokerStore? store = null,
        System.Diagnostics.Metrics.IMeterFactory? meters = null)
    {
        Options = options.Value;
        Authenticator = authenticator;
        Logger = logger;
        _time = time;
        _store = store;
        Metrics = new BrokerMetrics(meters);
    }

    public BrokerOptions Options { get; }

    public IBrokerAuthenticator Authenticator { get; }

    public BrokerMetrics Metrics { get; }

    /// <summary>Refused TLS handshakes: counted, and logged once per source and cause.</summary>
    public Hosting.TlsRefusals TlsRefusals => _tlsRefusals ??= new Hosting.TlsRefusals(Logger, Metrics, _time);

    private Hosting.TlsRefusals? _tlsRefusals;

    internal PublishSequences Sequences { get; } = new();

    internal ILogger Logger { get; }

    internal long NowMs => _time.GetUtcNow().ToUnixTimeMilliseconds();

    public int SessionCount
    {
        get
        {
            lock (_sessionsLock)
            {
                return _sessions.Count;
            }
        }
    }

    public int RetainedCount => _retained.Count;

    /// <summary>Transactions committed by the persistent-session journal.</summary>
    public long JournalCommits => _store?.JournalIfStarted?.Commits ?? 0;

    /// <summary>Rows the persistent-session journal wrote or deleted.</summary>
    public long JournalRows => _store?.JournalIfStarted?.Written ?? 0;

    /// <summary>
    /// Serves one network connection until it closes. <paramref name="verifiedUser"/> is an API user
    /// the host has verified already (the web console's session), or null.
    /// </summary>
    public Task RunConnectionAsync(IDuplexPipe transport, Action abort, X509Certificate2? clientCertificate, bool isTls, string remoteAddress, string listener, string? verifiedUser = null) =>
        ServeConnectionAsync(new Hosting.HostedTransport(transport, abort, verifiedUser), clientCertificate, isTls, remoteAddress, listener);

    /// <summary>Serves one connection until it closes; the transport is disposed (a graceful close) at the end.</summary>
    internal Task ServeConnectionAsync(Hosting.IConnectionTransport transport, X509Certificate2? clientCertificate, bool isTls, string remoteAddress, string listener)
    {
        var connection = new MqttConnection(this, transport, clientCertificate, isTls, remoteAddress, listener);
        _connections.TryAdd(connection, 0);
        Metrics.ConnectionOpened();
        return connection.RunAsync();
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (_store is not null)
        {
            Restore(_store);
        }

        _sweeper = SweepAsync(_stopping.Token);
        _keepAliveWatcher = WatchKeepAlivesAsync(_stopping.Token);
        return Task.CompletedTask;
    }

    /// <summary>
    /// Closes every client connection (MQTT 5 clients get DISCONNECT 0x8B). Called as soon as the
    /// host starts stopping, so Kestrel's graceful wait for TLS and WebSocket connections ends at once.
    /// </summary>
    public void DisconnectAll()
    {
        foreach (var connection in _connections.Keys)
        {
            connection.Close(ReasonCode.ServerShuttingDown, "SERVER_INITIATED_DISCONNECT", "server shutting down");
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        DisconnectAll();

        // Give writers a moment to flush their DISCONNECT packets.
        var deadline = _time.GetUtcNow().AddSeconds(2);
        while (!_connections.IsEmpty && _time.GetUtcNow() < deadline)
        {
            await Task.Delay(20, CancellationToken.None);
        }

        foreach (var task in new[] { _sweeper, _keepAliveWatcher })
        {
            try
            {
                if (task is not null)
                {
                    await task;
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        if (_store is not null)
        {
            await SaveAsync(_store);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stopping.Dispose();
        Metrics.Dispose();
        await Task.CompletedTask;
    }

    /// <summary>
    /// Publishes a message made by the server (lifecycle events, shadows, rule republishes …)
    /// without a publish policy check. <paramref name="origin"/> names its maker for observers.
    /// </summary>
    public int PublishFromServer(string topic, ReadOnlyMemory<byte> payload, byte qos = 0, bool retain = false, string? origin = null)
    {
        var message = new MqttMessage
        {
            Topic = topic,
            Payload = payload,
            Qos = qos,
            Retain = retain,
            ReceivedAtMs = NowMs,
            Origin = origin,
        };
        return Publish(message, null);
    }

    /// <summary>
    /// Publishes a server reply to every subscriber and also to <paramref name="requesterClientId"/>
    /// when that client is connected but not subscribed to the topic (AWS delivers shadow replies
    /// to the requester either way). The requester's Receive policy still applies.
    /// </summary>
    public int PublishReply(string topic, ReadOnlyMemory<byte> payload, string? requesterClientId, byte qos = 1)
    {
        var message = new MqttMessage
        {
            Topic = topic,
            Payload = payload,
            Qos = qos,
            ReceivedAtMs = NowMs,
        };
        var matched = Publish(message, null, out var stamp);
        return requesterClientId is null ? matched : matched + Deliver(requesterClientId, message, stamp);
    }

    /// <summary>
    /// Sends a server reply to one connected client only, whatever the subscriptions (fleet
    /// provisioning answers carry private keys: AWS returns them on the requesting connection
    /// alone). The client's Receive policy still applies. Returns 1 when it was queued.
    /// </summary>
    public int SendToClient(string clientId, string topic, ReadOnlyMemory<byte> payload, byte qos = 1) =>
        Deliver(clientId, new MqttMessage { Topic = topic, Payload = payload, Qos = qos, ReceivedAtMs = NowMs }, stamp: -1);

    /// <summary>The principal of a connected client, or null.</summary>
    public ClientPrincipal? PrincipalOf(string clientId)
    {
        lock (_sessionsLock)
        {
            return _sessions.TryGetValue(clientId, out var session) ? session.Connection?.Principal : null;
        }
    }

    /// <summary>Queues <paramref name="message"/> for one client unless routing already did (same <paramref name="stamp"/>).</summary>
    private int Deliver(string clientId, MqttMessage message, long stamp)
    {
        Session? session;
        lock (_sessionsLock)
        {
            _sessions.TryGetValue(clientId, out session);
        }

        if (session?.Connection is not { } connection || Volatile.Read(ref session.RouteStamp) == stamp
            || !session.CanReceive(message.Topic, Authenticator.PolicyGeneration))
        {
            return 0;
        }

        if (session.TryEnqueue(new Outgoing(message, message.Qos, false, null), Options.MaxQueuedMessagesPerClient))
        {
            connection.Wake();
            return 1;
        }

        return 0;
    }

    /// <summary>Whether any subscription matches <paramref name="topic"/> (policies aside).</summary>
    public bool HasSubscribers(string topic)
    {
        var found = false;
        _index.Match(topic, ref found, static (ref bool f, Subscriber _) => f = true);
        return found;
    }

    /// <summary>Whether a message on <paramref name="topic"/> would reach anyone: a subscriber or the observer (the rules engine).</summary>
    public bool IsWanted(string topic) => HasSubscribers(topic) || (_observer?.Wants(topic) ?? false);

    /// <summary>Sets the observer of every routed message (the rules engine).</summary>
    public void SetPublishObserver(IPublishObserver observer) => _observer = observer;

    /// <summary>Adds a service for requests on reserved topics (see <see cref="IServerTopicHandler"/>).</summary>
    public void AddTopicHandler(IServerTopicHandler handler)
    {
        lock (_sessionsLock)
        {
            _handlers = [.. _handlers, handler];
        }
    }

    /// <summary>The handler for a published topic, if a service owns it.</summary>
    internal IServerTopicHandler? HandlerFor(string topic)
    {
        foreach (var handler in _handlers)
        {
            if (handler.Handles(topic))
            {
                return handler;
            }
        }

        return null;
    }

    /// <summary>Disconnects every live connection whose principal matches (certificate revoked or deactivated).</summary>
    public int DisconnectWhere(Func<ClientPrincipal, bool> predicate, string reason)
    {
        var count = 0;
        foreach (var connection in _connections.Keys)
        {
            if (connection.Principal is { } principal && predicate(principal))
            {
                Logger.PrincipalRevoked(connection.ClientId, reason);
                connection.Close(ReasonCode.NotAuthorized, "FORBIDDEN_ACCESS", reason);
                count++;
            }
        }

        return count;
    }

    /// <summary>The filters a client's session holds (empty when there is no session).</summary>
    public IReadOnlyList<string> SubscriptionsOf(string clientId)
    {
        lock (_sessionsLock)
        {
            return _sessions.TryGetValue(clientId, out var session) ? [.. session.GetSubscriptions().Select(s => s.Filter)] : [];
        }
    }

    /// <summary>The client ids with a live connection.</summary>
    public IReadOnlyList<string> ConnectedClientIds() =>
        _connections.Keys.Where(c => c.Session is not null).Select(c => c.ClientId).ToList();
}
