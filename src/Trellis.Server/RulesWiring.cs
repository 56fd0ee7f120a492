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

/// <summary>The broker hands every routed message the rules want to the engine's queue.</summary>
internal sealed class RulesObserver(RuleEngine rules) : IPublishObserver
{
    public bool Wants(string topic) => rules.Wants(topic);

    public void OnPublished(in PublishedMessage message) =>
        rules.Enqueue(message.Topic, message.Payload, message.ClientId, message.Principal, message.Origin);
}

/// <summary>Runs the rules engine's worker for the life of the server.</summary>
internal sealed class RulesWorker(RuleEngine rules) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => rules.RunAsync(stoppingToken);
}
