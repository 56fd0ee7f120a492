using System.IO.Pipelines;
using System.Net.WebSockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Trellis.Broker.Hosting;

/// <summary>MQTT over WebSockets (MQTT 5 §6): binary frames, subprotocol "mqtt".</summary>
public static class MqttWebSocketEndpoint
{
    public static IEndpointConventionBuilder MapMqttWebSocket(this IEndpointRouteBuilder endpoints, string path = "/mqtt") =>
        endpoints.Map(path, HandleAsync);

    private static async Task HandleAsync(HttpContext context)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            context.Response.StatusCode = StatusCodes.Status426UpgradeRequired;
            await context.Response.WriteAsJsonAsync(new { message = "MQTT over WebSockets: connect with a WebSocket client using subprotocol 'mqtt'." });
            return;
        }

        var offered = context.WebSockets.WebSocketRequestedProtocols;
        var subProtocol = offered.Contains("mqtt") ? "mqtt" : offered.Contains("mqttv3.1") ? "mqttv3.1" : null;
        using var socket = await context.WebSockets.AcceptWebSocketAsync(subProtocol);
        await using var stream = WebSocketStream.Create(socket, WebSocketMessageType.Binary, ownsWebSocket: false);
        var transport = new StreamPipe(PipeReader.Create(stream), PipeWriter.Create(stream));
        var broker = context.RequestServices.GetRequiredService<MqttBroker>();
        var remote = context.Connection.RemoteIpAddress?.ToString() ?? "unknown";
        await broker.RunConnectionAsync(transport, context.Abort, context.Connection.ClientCertificate, context.Request.IsHttps, remote, $"ws:{context.Connection.LocalPort}");
        if (socket.State == WebSocketState.Open)
        {
            try
            {
                await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
            }
            catch (WebSocketException)
            {
            }
        }
    }

    private sealed class StreamPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
