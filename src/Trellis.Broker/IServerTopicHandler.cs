namespace Trellis.Broker;

/// <summary>
/// A service that answers requests published on reserved topics (shadows, later jobs and fleet
/// provisioning). The broker routes the publish to subscribers as usual, then hands it to the
/// handler off the socket thread, and holds the publishing connection's next packets (and a
/// QoS 1 PUBACK) until the handler finishes: requests from one client are handled in order, and
/// a PUBACK means the request was handled.
/// </summary>
public interface IServerTopicHandler
{
    /// <summary>Cheap test run on the packet thread for every publish.</summary>
    bool Handles(string topic);

    /// <summary>Handles one request. Exceptions are logged and do not close the connection.</summary>
    Task HandleAsync(string topic, ReadOnlyMemory<byte> payload, string clientId);
}
