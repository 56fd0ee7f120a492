using Trellis.Broker;
using Trellis.Registry;

namespace Trellis.Server;

/// <summary>Hands the broker's connects and disconnects to the things' connectivity (a gateway's disconnect takes its leaves offline too).</summary>
internal sealed class ConnectivityObserver(ThingConnectivity connectivity, GatewayLeaves gatewayLeaves) : IConnectivityObserver
{
    public void Connected(string clientId, ClientPrincipal principal, long version, long timestampMs)
    {
        if (!principal.IsOperator)
        {
            connectivity.Record(clientId, principal.ThingName, version, connected: true, reason: null, timestampMs);
        }
    }

    public void Disconnected(string clientId, ClientPrincipal? principal, long version, string disconnectReason, long timestampMs)
    {
        // Version 0: the connection never got its CONNACK, so it never counted as online.
        if (version > 0 && principal is not { IsOperator: true })
        {
            connectivity.Record(clientId, principal?.ThingName, version, connected: false, disconnectReason, timestampMs);
            if (principal?.ThingName is { } thing)
            {
                gatewayLeaves.GatewayDisconnected(thing, disconnectReason, timestampMs);
            }
        }
    }
}
