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
    public static IEndpointConventionBuilder MapMqttWebSocket(this IEndpointRouteBuilder endpoints, string path = "/mqtt")
    {
        // The web console's MQTT client: the request was authenticated ahead of this endpoint (its
        // session cookie and origin, or a SigV4 signature), and the client acts as that API user.
        endpoints.Map("/console/mqtt", context => context.Items["trellis.accessKeyId"] is string user
            ? HandleAsync(context, user)
            : MessageAsync(context, StatusCodes.Status401Unauthorized, "UnauthorizedException", "Sign in to the console first: /console/mqtt serves the signed-in user."));
        return endpoints.Map(path, context => HandleAsync(context, null));
    }

    /// <summary>An error answer as the API writes them: <c>x-amzn-ErrorType</c> and <c>{"message": …}</c>.</summary>
    public static Task MessageAsync(HttpContext context, int status, string errorType, string message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json; charset=utf-8";
        context.Response.Headers["x-amzn-ErrorType"] = errorType;
        return context.Response.WriteAsync(new System.Text.Json.Nodes.JsonObject { ["message"] = message }.ToJsonString());
    }

    private static async Task HandleAsync(HttpContext context, string? verifiedUser)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            await MessageAsync(context, StatusCodes.Status426UpgradeRequired, "InvalidRequestException", "MQTT over WebSockets: connect with a WebSocket client using subprotocol 'mqtt'.");
            return;
        }

        var offered = context.WebSockets.WebSocketRequestedProtocols;
        var subProtocol = offered.Contains("mqtt") ? "mqtt" : offered.Contains("mqttv3.1") ? "mqttv3.1" : null;
        using var socket = await context.WebSockets.AcceptWebSocketAsync(subProtocol);
        await using var stream = WebSocketStream.Create(socket, WebSocketMessageType.Binary, ownsWebSocket: false);
        var transport = new StreamPipe(PipeReader.Create(stream), PipeWriter.Create(stream));
        var broker = context.RequestServices.GetRequiredService<MqttBroker>();

        // A console session's socket ends with the session (sign-out, its key rotated or deleted, its maximum age).
        using var ended = context.Items["trellis.sessionEnded"] is CancellationToken sessionEnded ? sessionEnded.Register(context.Abort) : default;
        var remote = context.Connection.RemoteIpAddress?.ToString() ?? "unknown";
        await broker.RunConnectionAsync(transport, context.Abort, context.Connection.ClientCertificate, context.Request.IsHttps, remote, $"ws:{context.Connection.LocalPort}", verifiedUser);
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
