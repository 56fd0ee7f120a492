using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Trellis.Broker;
using Trellis.Broker.Hosting;
using Trellis.Coap;
using Trellis.Device;
using Trellis.Gateway.Forwarding;
using Trellis.Gateway.Local;
using Trellis.Gateway.Modbus;
using Trellis.Gateway.Rules;

namespace Trellis.Gateway;

/// <summary>What <c>trellis gateway</c> runs with.</summary>
public sealed class EdgeGatewayOptions
{
    /// <summary>The gateway's identity upstream (its certificate, key, CA and the server's address).</summary>
    public required DeviceOptions Identity { get; init; }

    /// <summary>The gateway's own data folder: the disk queue and the leaves.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>The local MQTT listener for leaves; null for none.</summary>
    public IPEndPoint? Mqtt { get; init; }

    /// <summary>The local CoAP listener for constrained leaves; null for none.</summary>
    public IPEndPoint? Coap { get; init; }

    public RegisterMap? Modbus { get; init; }

    /// <summary>Local rules (a rules file, docs/gateway.md); null for none.</summary>
    public string? RulesFile { get; init; }

    public ForwardStoreOptions Queue { get; init; } = new();
}

/// <summary>
/// The edge gateway (docs/gateway.md): leaves publish to its local MQTT listener (Trellis's own
/// broker, embedded) and Modbus devices are polled for theirs; every leaf message is on disk before
/// the leaf's PUBACK, then forwarded upstream in order and removed on the upstream PUBACK. Messages
/// upstream sends for the leaves (their shadows and jobs) come down through the gateway's upstream
/// subscriptions and are published to them locally.
/// </summary>
public sealed partial class EdgeGateway : IAsyncDisposable
{
    private readonly EdgeGatewayOptions _options;
    private readonly ILogger _logger;
    private readonly ForwardStore _queue;
    private readonly MqttBroker? _broker;
    private readonly MqttSocketListener? _listener;
    private readonly Upstream _upstream;
    private readonly ModbusBridge? _modbus;
    private readonly LeafRegistry _leaves;
    private readonly EdgeRules? _rules;
    private readonly LeafLink? _link;
    private readonly LeafCoapHandler? _coap;
    private CoapEndpoint? _coapEndpoint;

    public EdgeGateway(EdgeGatewayOptions options, ILoggerFactory logs)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logs);
        _options = options;
        _logger = logs.CreateLogger("Trellis.Gateway");
        GatewayFiles.CreatePrivateDirectory(options.DataDirectory);
        _leaves = LeafRegistry.Load(options.DataDirectory);
        _queue = new ForwardStore(Path.Combine(options.DataDirectory, "queue.db"), options.Queue);
        _upstream = new Upstream(options.Identity, _queue, _logger);

        // The leaves as things upstream: whichever way leaves reach this gateway (MQTT, Modbus, CoAP).
        _link = options.Mqtt is not null || options.Modbus is not null || options.Coap is not null
            ? new LeafLink(options.Identity.ThingName, _leaves, _upstream, _logger)
            : null;
        _rules = options.RulesFile is { } rules ? EdgeRules.Load(rules, _logger) : null;
        if (options.Mqtt is { } endpoint)
        {
            var brokerOptions = new BrokerOptions { EventLoops = 1, MaxSubscriptionsPerClient = 100 };
            _broker = new MqttBroker(Options.Create(brokerOptions), new LeafAuthenticator(_leaves), logs.CreateLogger<MqttBroker>(), TimeProvider.System);
            _broker.SetPublishObserver(new QueueObserver(_queue, _rules, _logger));
            _listener = new MqttSocketListener(_broker, endpoint, flag: "--mqtt");
            _broker.SetConnectivityObserver(_link!);
            foreach (var leaf in _leaves.Leaves)
            {
                _upstream.Filters.Add($"$aws/things/{leaf.Thing}/#");
            }
        }

        if (options.Modbus is { } map)
        {
            _modbus = new ModbusBridge(map, TakeAsync, _logger);
            _link!.AddPolled(_modbus.Things);
            _modbus.Reachability = _link.Reachable;
            _upstream.Filters.AddRange(_modbus.DeltaTopics.Where(t => !_upstream.Filters.Contains($"$aws/things/{t.Split('/')[2]}/#")));
        }

        if (options.Coap is not null)
        {
            _coap = new LeafCoapHandler(_leaves, new LeafAuthenticator(_leaves), TakeAsync, _broker, _link!);
        }

        _upstream.Downstream = OnDownstreamAsync;
        _upstream.Connected = _link is null ? null : _link.OnUpstreamConnectedAsync;
    }

    /// <summary>The local CoAP listener's port (0 when there is none or it has not started).</summary>
    public int CoapPort => _coapEndpoint?.LocalEndPoint.Port ?? 0;

    /// <summary>The local MQTT listener's port (0 when there is none or it has not started).</summary>
    public int MqttPort => _listener?.Port ?? 0;

    public ForwardStore Queue => _queue;

    public Upstream Upstream => _upstream;

    public int LeafCount => _leaves.Leaves.Count;

    public int RuleCount => _rules?.Rules.Count ?? 0;

    /// <summary>The leaves as things upstream (null for a gateway with no listener and no Modbus devices).</summary>
    public LeafLink? Leaves => _link;

    /// <summary>Serves until <paramref name="ct"/> is cancelled.</summary>
    public async Task RunAsync(Action? started, CancellationToken ct)
    {
        if (_broker is not null)
        {
            await _broker.StartAsync(ct);
            await _listener!.StartAsync(ct);
        }

        if (_coap is not null)
        {
            try
            {
                _coapEndpoint = CoapEndpoint.Start(_options.Coap!, _coap, _logger, maxBodyBytes: _coap.MaxBodyBytes);
            }
            catch (System.Net.Sockets.SocketException e)
            {
                throw new InvalidOperationException($"UDP port {_options.Coap} cannot be used ({e.Message}): give --coap another HOST:PORT", e);
            }
        }

        started?.Invoke();
        var tasks = new List<Task> { _upstream.RunAsync(ct), WatchDropsAsync(ct) };
        if (_modbus is not null)
        {
            tasks.Add(_modbus.RunAsync(ct));
        }

        if (_rules is not null)
        {
            tasks.Add(_rules.RunAsync(_queue, ct));
        }

        if (_link is not null)
        {
            tasks.Add(_link.RunAsync(ct));
        }

        if (_coap is not null)
        {
            tasks.Add(_coap.RunAsync(ct));
        }

        try
        {
            await Task.WhenAll(tasks);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        finally
        {
            if (_coapEndpoint is not null)
            {
                await _coapEndpoint.DisposeAsync();
                _coapEndpoint = null;
            }

            if (_broker is not null)
            {
                await _listener!.StopAsync(CancellationToken.None);
                await _broker.StopAsync(CancellationToken.None);
            }
        }
    }

    /// <summary>Says in the log when a full queue dropped its oldest messages (drop-oldest), with the count.</summary>
    private async Task WatchDropsAsync(CancellationToken ct)
    {
        var reported = _queue.Dropped;
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(2));
        try
        {
            while (await timer.WaitForNextTickAsync(ct))
            {
                var now = _queue.Dropped;
                if (now != reported)
                {
                    LogDropped(_logger, now - reported, now, _options.Queue.MaxBytes / (1024 * 1024));
                    reported = now;
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "The disk queue is full: {Count} oldest message(s) dropped to make room ({Total} since start). Raise --queue-max-mb ({MaxMb} now), or give --queue-full hold to slow the leaves down instead")]
    private static partial void LogDropped(ILogger logger, long count, long total, long maxMb);

    /// <summary>A leaf's message from Modbus or CoAP into the queue: through the local rules when there are any.</summary>
    private Task TakeAsync(string leaf, string topic, byte[] payload, CancellationToken ct) => _rules is null
        ? _queue.AppendAsync(topic, payload, leaf, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), ct)
        : _rules.TakeAsync(_queue, topic, payload, leaf, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), ct);

    public async ValueTask DisposeAsync()
    {
        await _upstream.DisposeAsync();
        _listener?.Dispose();
        if (_broker is not null)
        {
            await _broker.DisposeAsync();
        }

        _queue.Dispose();
    }

    private async Task OnDownstreamAsync(string topic, byte[] payload)
    {
        if (_link is not null && _link.TryTakeReply(topic, payload))
        {
            return;
        }

        _broker?.PublishFromServer(topic, payload, qos: 1, origin: "upstream");
        if (_modbus is not null)
        {
            try
            {
                await _modbus.OnDownstreamAsync(topic, payload, CancellationToken.None);
            }
            catch (Exception e) when (e is IOException or TimeoutException or QueueFullException or ObjectDisposedException)
            {
                LogDownstreamFailed(_logger, topic, e.Message);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "A message from upstream on {Topic} could not be applied: {Reason}")]
    private static partial void LogDownstreamFailed(ILogger logger, string topic, string reason);
}
