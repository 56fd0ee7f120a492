using Microsoft.Extensions.Logging;

namespace Trellis.Server;

/// <summary>Server log events: ids 4000–4999.</summary>
internal static partial class Log
{
    [LoggerMessage(4001, LogLevel.Warning, "--allow-anonymous is on: MQTT clients without credentials connect with an allow-all policy on the plain TCP and WebSocket listeners. Use this for development only.")]
    public static partial void AnonymousAllowed(this ILogger logger);
}
