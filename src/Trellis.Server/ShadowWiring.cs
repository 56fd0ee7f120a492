using Trellis.Api;
using Trellis.Broker;
using Trellis.Shadows;

namespace Trellis.Server;

/// <summary>Shadow replies and notifications go out through the broker, at QoS 1, to subscribers and the requester.</summary>
internal sealed class BrokerShadowPublisher(MqttBroker broker) : IShadowPublisher
{
    public void Publish(string topic, byte[] payload, string? requesterClientId) =>
        broker.PublishReply(topic, payload, requesterClientId);

    public bool HasSubscribers(string topic) => broker.HasSubscribers(topic);
}

/// <summary>Hands MQTT publishes on <c>$aws/things/{thing}/shadow/…/get|update|delete</c> to the shadow service.</summary>
internal sealed class ShadowTopicHandler(ShadowService shadows) : IServerTopicHandler
{
    public bool Handles(string topic) => ShadowTopic.TryParseRequest(topic, out _, out _);

    public Task HandleAsync(string topic, ReadOnlyMemory<byte> payload, string clientId) =>
        shadows.HandleMqttAsync(topic, payload, clientId);
}

/// <summary>HTTP Publish: routes through the broker; a shadow or jobs request topic also goes to its service, as over MQTT.</summary>
internal sealed class BrokerMessagePublisher(MqttBroker broker, ShadowService shadows, Trellis.Jobs.JobService jobs) : IMessagePublisher
{
    public async Task PublishAsync(string topic, ReadOnlyMemory<byte> payload, byte qos, bool retain)
    {
        broker.PublishFromServer(topic, payload, qos, retain);
        await shadows.HandleMqttAsync(topic, payload, null); // does nothing unless the topic is a shadow request
        jobs.HandleMqtt(topic, payload, null); // likewise for a jobs request
    }
}
