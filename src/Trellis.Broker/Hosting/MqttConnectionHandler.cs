using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;

namespace Trellis.Broker.Hosting;

/// <summary>Kestrel entry point for MQTT over TCP and TLS: hands each connection's pipes to the broker.</summary>
public sealed class MqttConnectionHandler(MqttBroker broker) : ConnectionHandler
{
    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        var tls = connection.Features.Get<ITlsConnectionFeature>();
        var remote = connection.RemoteEndPoint is IPEndPoint ip ? ip.Address.ToString() : connection.RemoteEndPoint?.ToString() ?? "unknown";
        var listener = connection.LocalEndPoint is IPEndPoint local ? $"{(tls is null ? "mqtt" : "mqtts")}:{local.Port}" : "mqtt";
        await broker.RunConnectionAsync(connection.Transport, connection.Abort, tls?.ClientCertificate, tls is not null, remote, listener);
    }
}
