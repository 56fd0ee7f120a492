using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Trellis.Broker;
using Trellis.Registry;

namespace Trellis.Server;

/// <summary>
/// Leaf devices behind an edge gateway (docs/gateway.md, "Leaves upstream"): the gateway registers
/// each of its leaves as a thing of its own and reports when a leaf comes and goes on its local
/// listener, on <c>$trellis/gateways/{gateway}/leaves/{leaf}/register</c> and <c>…/presence</c>.
/// Only the gateway's own connection may speak for it (its certificate's thing is
/// <c>{gateway}</c>), and the broker has already checked the gateway's policy allows the publish,
/// so a policy can bound which leaf names a gateway may claim. A registered leaf carries the
/// attribute <c>gateway</c>; a thing that has principals of its own (a device that connects
/// directly) or belongs to another gateway is never taken over. When the gateway's connection
/// goes, so do its leaves.
/// </summary>
internal sealed partial class GatewayLeaves(RegistryService registry, ThingConnectivity connectivity, MqttBroker broker, ILogger<GatewayLeaves> logger) : IServerTopicHandler
{
    public const string Prefix = "$trellis/gateways/";
    public const string GatewayAttribute = "gateway";

    private readonly ConcurrentDictionary<string, ConcurrentDictionary<string, byte>> _online = new(StringComparer.Ordinal);
    private long _version;

    public bool Handles(string topic) => topic.StartsWith(Prefix, StringComparison.Ordinal);

    public Task HandleAsync(string topic, ReadOnlyMemory<byte> payload, string clientId)
    {
        // $trellis/gateways/{gateway}/leaves/{leaf}/{register|presence}
        var parts = topic[Prefix.Length..].Split('/');
        if (parts.Length != 4 || parts[1] != "leaves" || parts[3] is not ("register" or "presence"))
        {
            return Task.CompletedTask; // replies and anything else under the prefix are plain messages
        }

        var (gateway, leaf, action) = (parts[0], parts[2], parts[3]);
        var reply = $"{Prefix}{gateway}/leaves/{leaf}/{action}";
        var principal = broker.PrincipalOf(clientId);
        if (principal is null || principal.IsOperator || principal.ThingName != gateway)
        {
            Reject(clientId, reply, 403, "ForbiddenException",
                $"only gateway {gateway}'s own connection (a certificate attached to thing {gateway}) may speak for its leaves; this connection is {(principal?.ThingName is { } t ? "thing " + t : "no thing")}");
            return Task.CompletedTask;
        }

        JsonObject? body;
        try
        {
            body = payload.Length == 0 ? [] : JsonNode.Parse(payload.Span) as JsonObject;
        }
        catch (JsonException e)
        {
            Reject(clientId, reply, 400, "InvalidRequestException", "the payload is not JSON: " + e.Message);
            return Task.CompletedTask;
        }

        if (body is null)
        {
            Reject(clientId, reply, 400, "InvalidRequestException", "the payload must be a JSON object");
            return Task.CompletedTask;
        }

        if (action == "register")
        {
            Register(clientId, reply, gateway, leaf, body);
        }
        else
        {
            Presence(clientId, reply, gateway, leaf, body);
        }

        return Task.CompletedTask;
    }

    /// <summary>The gateway's own connection went: every leaf it reported online goes offline.</summary>
    public void GatewayDisconnected(string gateway, string reason, long timestampMs)
    {
        if (_online.TryRemove(gateway, out var leaves))
        {
            foreach (var leaf in leaves.Keys)
            {
                connectivity.Record(LeafClientId(leaf), leaf, Interlocked.Increment(ref _version), connected: false, reason, timestampMs);
            }
        }
    }

    private void Register(string clientId, string reply, string gateway, string leaf, JsonObject body)
    {
        var attributes = new Dictionary<string, string>(StringComparer.Ordinal);
        if (body["attributes"] is JsonObject given)
        {
            foreach (var (name, value) in given)
            {
                if (value is JsonValue v && v.TryGetValue<string>(out var s) && name != GatewayAttribute)
                {
                    attributes[name] = s;
                }
            }
        }

        attributes[GatewayAttribute] = gateway;
        var existing = registry.DescribeThing(leaf);
        bool created;
        if (existing.Value is { } thing)
        {
            if (Refusal(thing, gateway) is { } refusal)
            {
                LogRefused(logger, gateway, leaf, refusal);
                Reject(clientId, reply, 409, "ResourceAlreadyExistsException", refusal);
                return;
            }

            created = false;
            if (!thing.Attributes.TryGetValue(GatewayAttribute, out var owner) || owner != gateway)
            {
                var updated = registry.UpdateThing(leaf, null, false, attributes.ToDictionary(a => a.Key, a => (string?)a.Value), merge: true, expectedVersion: null);
                if (updated.Error is { } error)
                {
                    Reject(clientId, reply, 400, error.Code, error.Message);
                    return;
                }
            }
        }
        else
        {
            var made = registry.CreateThing(leaf, body["thingTypeName"]?.GetValue<string>(), attributes);
            if (made.Error is { } error)
            {
                Reject(clientId, reply, error is Trellis.Core.Errors.TrellisError.AlreadyExists ? 409 : 400, error.Code, error.Message);
                return;
            }

            created = true;
            LogRegistered(logger, leaf, gateway);
        }

        var now = registry.DescribeThing(leaf).Value!;
        Accept(clientId, reply, new JsonObject
        {
            ["thingName"] = now.Name,
            ["thingArn"] = now.Arn,
            ["thingId"] = now.Id,
            ["created"] = created,
        });
    }

    private void Presence(string clientId, string reply, string gateway, string leaf, JsonObject body)
    {
        if (body["connected"] is not JsonValue flag || !flag.TryGetValue<bool>(out var connected))
        {
            Reject(clientId, reply, 400, "InvalidRequestException", "presence needs {\"connected\": true|false}");
            return;
        }

        var thing = registry.DescribeThing(leaf).Value;
        if (thing is null || !thing.Attributes.TryGetValue(GatewayAttribute, out var owner) || owner != gateway)
        {
            Reject(clientId, reply, 404, "ResourceNotFoundException", $"{leaf} is not a registered leaf of gateway {gateway}: register it first");
            return;
        }

        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var leaves = _online.GetOrAdd(gateway, _ => new(StringComparer.Ordinal));
        if (connected)
        {
            leaves[leaf] = 0;
        }
        else
        {
            leaves.TryRemove(leaf, out _);
        }

        var reason = body["disconnectReason"] is JsonValue r && r.TryGetValue<string>(out var why) ? why : "CLIENT_INITIATED_DISCONNECT";
        connectivity.Record(LeafClientId(leaf), leaf, Interlocked.Increment(ref _version), connected, connected ? null : reason, now);
        Accept(clientId, reply, new JsonObject { ["thingName"] = leaf, ["connected"] = connected });
    }

    /// <summary>Why <paramref name="gateway"/> may not take <paramref name="thing"/> as its leaf, or null.</summary>
    private string? Refusal(ThingRecord thing, string gateway)
    {
        if (thing.Attributes.TryGetValue(GatewayAttribute, out var owner) && owner != gateway)
        {
            return $"thing {thing.Name} is a leaf of gateway {owner}; remove its '{GatewayAttribute}' attribute first to move it";
        }

        var principals = registry.ListThingPrincipals(thing.Name, null, 1);
        return principals.Value is { Items.Count: > 0 }
            ? $"thing {thing.Name} has principals of its own (it connects directly); a gateway does not take over a device that has its own credentials"
            : null;
    }

    // Leaves are counted under a client id of their own, apart from any direct connection of the same name.
    private static string LeafClientId(string leaf) => "leaf:" + leaf;

    private void Accept(string clientId, string reply, JsonObject body) =>
        broker.SendToClient(clientId, reply + "/accepted", Encoding.UTF8.GetBytes(body.ToJsonString()));

    private void Reject(string clientId, string reply, int status, string code, string message) =>
        broker.SendToClient(clientId, reply + "/rejected", Encoding.UTF8.GetBytes(new JsonObject
        {
            ["statusCode"] = status,
            ["errorCode"] = code,
            ["errorMessage"] = message,
        }.ToJsonString()));

    [LoggerMessage(Level = LogLevel.Information, Message = "Leaf {Leaf} registered by gateway {Gateway}")]
    private static partial void LogRegistered(ILogger logger, string leaf, string gateway);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Gateway {Gateway} may not register leaf {Leaf}: {Reason}")]
    private static partial void LogRefused(ILogger logger, string gateway, string leaf, string reason);
}
