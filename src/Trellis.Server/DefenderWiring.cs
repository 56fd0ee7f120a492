using System.Text.Json.Nodes;
using Trellis.Broker;
using Trellis.Fleet.Defender;
using Trellis.Registry.Provisioning;

namespace Trellis.Server;

/// <summary>
/// Device-side metrics: a report on <c>$aws/things/{thing}/defender/metrics/json|cbor</c> is evaluated at
/// once and answered on <c>…/accepted</c> or <c>…/rejected</c> (with the reason), in the report's format.
/// </summary>
internal sealed class DefenderTopicHandler(Defender defender, MqttBroker broker) : IServerTopicHandler
{
    private const string Prefix = "$aws/things/";
    private const string Infix = "/defender/metrics/";

    public bool Handles(string topic) => Parse(topic, out _, out _);

    public Task HandleAsync(string topic, ReadOnlyMemory<byte> payload, string clientId)
    {
        if (!Parse(topic, out var thing, out var cbor))
        {
            return Task.CompletedTask;
        }

        var refusal = defender.Report(thing, payload, cbor, out var reportId);
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var reply = refusal is { } r
            ? new JsonObject
            {
                ["thingName"] = thing,
                ["status"] = "REJECTED",
                ["statusDetails"] = new JsonObject { ["ErrorCode"] = r.Code, ["ErrorMessage"] = r.Message },
                ["timestamp"] = now,
            }
            : new JsonObject { ["thingName"] = thing, ["reportId"] = reportId, ["status"] = "ACCEPTED", ["timestamp"] = now };
        var bytes = cbor ? CborJson.Encode(reply) : System.Text.Encoding.UTF8.GetBytes(reply.ToJsonString());
        broker.PublishReply(topic + (refusal is null ? "/accepted" : "/rejected"), bytes, clientId);
        return Task.CompletedTask;
    }

    private static bool Parse(string topic, out string thing, out bool cbor)
    {
        thing = string.Empty;
        cbor = false;
        if (!topic.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }

        var at = topic.IndexOf(Infix, Prefix.Length, StringComparison.Ordinal);
        if (at <= Prefix.Length || topic.IndexOf('/', Prefix.Length) != at)
        {
            return false;
        }

        var format = topic.AsSpan(at + Infix.Length);
        if (format is not ("json" or "cbor"))
        {
            return false;
        }

        thing = topic[Prefix.Length..at];
        cbor = format is "cbor";
        return true;
    }
}
