namespace Trellis.Api;

/// <summary>Publishes a message into the broker for the HTTP data plane (implemented by the server over the broker).</summary>
public interface IMessagePublisher
{
    /// <summary>Publishes as the server. Completes when the message is routed (and durable where the broker makes it so).</summary>
    Task PublishAsync(string topic, ReadOnlyMemory<byte> payload, byte qos, bool retain);
}
