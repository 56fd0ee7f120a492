using Microsoft.Extensions.Hosting;
using Trellis.Broker;
using Trellis.Rules;

namespace Trellis.Server;

/// <summary>Rule republishes go out through the broker as server messages tagged with their rule.</summary>
internal sealed class BrokerRulePublisher(Func<MqttBroker> broker) : IRulePublisher
{
    public void Publish(string topic, byte[] payload, byte qos, bool retain, string origin) =>
        broker().PublishFromServer(topic, payload, qos, retain, origin);
}

/// <summary>The store action writes into the embedded time-series store.</summary>
internal sealed class StoreSink(Trellis.Telemetry.TelemetryStore store) : ITelemetrySink
{
    public ValueTask WriteAsync(long timestampMs, string thing, string measure, double value, CancellationToken cancellationToken) =>
        store.WriteAsync(new Trellis.Telemetry.TelemetryPoint(timestampMs, thing, measure, value), cancellationToken);
}

/// <summary>Runs the time-series store's writer for the life of the server; on stop it writes what is queued.</summary>
internal sealed class TelemetryWriter(Trellis.Telemetry.TelemetryStore store) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => store.RunAsync(stoppingToken);
}

/// <summary>Compacts finished days of the time-series store and applies retention every ten minutes, beside the writer.</summary>
internal sealed class TelemetryMaintenance(Trellis.Telemetry.TelemetryStore store) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMinutes(10));
        do
        {
            await Task.Run(() => (store.ApplyRetention(), store.Compact()), stoppingToken);
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }
}

/// <summary>Delivers the rules' outbox for the life of the server.</summary>
internal sealed class OutboxWorker(Outbox outbox, RuleEngine rules, TopicRuleDestinations destinations, Trellis.Rules.Notifications.Notifier notifier, Trellis.Rules.Notifications.SmtpOptions smtp, Microsoft.Extensions.Logging.ILogger<OutboxDispatcher> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var http = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) }) { Timeout = TimeSpan.FromSeconds(10) };
        await using var dispatcher = new OutboxDispatcher(outbox, target => target.Split('|')[0] switch
        {
            "http" => new HttpConnector(http, destinations.Refusal),
            Trellis.Rules.Notifications.Notifier.HttpTarget => new HttpConnector(http), // an admin named the URL: no topic rule destination needed
            Trellis.Rules.Notifications.Notifier.SmtpTarget => new Trellis.Rules.Notifications.SmtpConnector(smtp),
            "kafka" => new KafkaConnector(System.Text.Json.Nodes.JsonNode.Parse(target[6..])!.AsObject().ToDictionary(p => p.Key, p => p.Value!.GetValue<string>())),
            _ => new NatsConnector(target.Split('|')[1], target.EndsWith("|js", StringComparison.Ordinal)),
        }, (entry, reason) => entry.Rule.StartsWith("notification:", StringComparison.Ordinal) ? notifier.ReportExpiredAsync(entry, reason) : rules.ReportExpiredAsync(entry, reason), logger);
        dispatcher.Start(stoppingToken);
        try
        {
            await Task.Delay(Timeout.Infinite, stoppingToken);
        }
        catch (OperationCanceledException)
        {
        }
    }
}

/// <summary>
/// The broker hands every routed message the rules want to the engine's queue, and those the alarm
/// models watch to the alarms (which never refuse: a refused message comes back through
/// <see cref="ObserveAsync"/> for the rules alone, so the alarms see it once).
/// </summary>
internal sealed class RulesObserver(RuleEngine rules, Trellis.Rules.Alarms.AlarmEngine alarms, CoapObservations? coap = null) : IPublishObserver
{
    public bool Wants(string topic) => rules.Wants(topic) || alarms.Wants(topic) || (coap?.Wants(topic) ?? false);

    public bool TryObserve(in PublishedMessage message, bool mayRefuse)
    {
        if (alarms.Wants(message.Topic))
        {
            alarms.Enqueue(message.Topic, message.Payload, message.ClientId, message.Principal);
        }

        if (coap?.Wants(message.Topic) == true)
        {
            coap.Offer(message);
        }

        return !rules.Wants(message.Topic) || rules.TryEnqueue(message.Topic, message.Payload, message.ClientId, message.Principal, message.Origin, mayRefuse);
    }

    public ValueTask ObserveAsync(PublishedMessage message, CancellationToken cancellationToken) =>
        rules.EnqueueAsync(message.Topic, message.Payload, message.ClientId, message.Principal, message.Origin, cancellationToken);
}

/// <summary>Runs the rules engine's worker for the life of the server.</summary>
internal sealed class RulesWorker(RuleEngine rules) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => rules.RunAsync(stoppingToken);
}
