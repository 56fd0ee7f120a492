namespace Trellis.Broker;

/// <summary>
/// Told of every client's connect (at CONNACK) and disconnect, with AWS's disconnect reason. Calls
/// come from the broker's threads: an observer only records or queues. The version
/// orders one client id's connections (a takeover's late disconnect is older than the new connect).
/// </summary>
public interface IConnectivityObserver
{
    void Connected(string clientId, ClientPrincipal principal, long version, long timestampMs);

    void Disconnected(string clientId, ClientPrincipal? principal, long version, string disconnectReason, long timestampMs);
}
