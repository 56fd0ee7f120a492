using System.Collections.Concurrent;
using System.Text;
using Trellis.Broker;
using Trellis.Coap;
using Trellis.Gateway.Forwarding;

namespace Trellis.Gateway.Local;

/// <summary>
/// The gateway's local CoAP listener for constrained leaves (docs/gateway.md, "CoAP leaves"): a leaf
/// names itself in the query (<c>?thing=LEAF&amp;token=PASSWORD</c>, the password `add-leaf` printed, as
/// the server takes a device token) and POSTs to <c>/topics/{topic…}</c>. The message is in the
/// disk queue (through the local rules, if any) before the 2.04, goes upstream like an MQTT leaf's,
/// and is also published to the local broker for leaves subscribed there. The leaf's local policy
/// (its own topics) applies. A leaf is online upstream from its request until it has been quiet for
/// <see cref="Idle"/>.
/// </summary>
public sealed class LeafCoapHandler(LeafRegistry leaves, LeafAuthenticator authenticator, LeafCoapHandler.Taker take, MqttBroker? broker, LeafLink? link) : ICoapHandler
{
    /// <summary>How a message goes into the queue (through the rules when there are any).</summary>
    public delegate Task Taker(string leaf, string topic, byte[] payload, CancellationToken cancellationToken);

    /// <summary>A CoAP leaf counts as online for this long after its last request (the server's --coap-idle default).</summary>
    public static readonly TimeSpan Idle = TimeSpan.FromSeconds(300);

    private const int MaxTopicBytes = 256;

    private readonly ConcurrentDictionary<string, long> _lastSeen = new(StringComparer.Ordinal);
    private long _taken;

    /// <summary>The largest body a leaf may send (blocks assembled), as the local MQTT listener's largest packet.</summary>
    public int MaxBodyBytes { get; init; } = 128 * 1024;

    /// <summary>Messages taken from CoAP leaves.</summary>
    public long Taken => Interlocked.Read(ref _taken);

    public async ValueTask<CoapResponse> HandleAsync(CoapRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var message = request.Message;
        var segments = message.All(CoapOption.UriPath).Select(o => o.AsText()).ToArray();
        if (segments is [".well-known", "core"])
        {
            return message.Code == CoapCode.Get
                ? new CoapResponse(CoapCode.Content, Encoding.UTF8.GetBytes("</topics>;title=\"POST /topics/{topic}?thing=LEAF&token=PASSWORD\""), [CoapOption.Of(CoapOption.ContentFormat, CoapContentFormat.LinkFormat)])
                : CoapResponse.Text(CoapCode.MethodNotAllowed, "Discovery answers GET only.");
        }

        var (leaf, principal, refusal) = Identify(message);
        if (refusal is not null)
        {
            return refusal;
        }

        Seen(leaf!);
        if (segments is not ["topics", .. var parts] || parts.Length == 0)
        {
            return CoapResponse.Text(CoapCode.NotFound, $"No resource at /{string.Join('/', segments)}: a leaf POSTs to /topics/{{topic}}; shadows and jobs are served to MQTT leaves.");
        }

        if (message.Code != CoapCode.Post && message.Code != CoapCode.Put)
        {
            return CoapResponse.Text(CoapCode.MethodNotAllowed, "/topics/… takes POST (publish).");
        }

        var topic = string.Join('/', parts);
        if (Publishing(topic, principal!) is { } refused)
        {
            return refused;
        }

        var payload = message.Payload.ToArray();
        try
        {
            await take(leaf!, topic, payload, cancellationToken);
        }
        catch (QueueFullException e)
        {
            return CoapResponse.Text(CoapCode.ServiceUnavailable, "The gateway's disk queue cannot take it: " + e.Message);
        }

        Interlocked.Increment(ref _taken);
        broker?.PublishFromServer(topic, payload, qos: 1, origin: "coap");
        return new CoapResponse(CoapCode.Changed);
    }

    public CoapResponse? Admit(CoapRequest firstBlock, long? announcedSize)
    {
        ArgumentNullException.ThrowIfNull(firstBlock);
        var (_, principal, refusal) = Identify(firstBlock.Message);
        if (refusal is not null)
        {
            return refusal;
        }

        var segments = firstBlock.Message.All(CoapOption.UriPath).Select(o => o.AsText()).ToArray();
        if (segments is not ["topics", .. var parts] || parts.Length == 0)
        {
            return CoapResponse.Text(CoapCode.NotFound, "Block-wise uploads go to /topics/… (POST).");
        }

        return announcedSize > MaxBodyBytes
            ? new CoapResponse(CoapCode.RequestEntityTooLarge, Encoding.UTF8.GetBytes($"At most {MaxBodyBytes} bytes."), [CoapOption.Of(CoapOption.Size1, (uint)MaxBodyBytes)])
            : Publishing(string.Join('/', parts), principal!);
    }

    /// <summary>Takes CoAP leaves that have been quiet for <see cref="Idle"/> offline, until <paramref name="ct"/> ends.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(5));
        try
        {
            while (await timer.WaitForNextTickAsync(ct))
            {
                var quietSince = Environment.TickCount64 - (long)Idle.TotalMilliseconds;
                foreach (var (leaf, seen) in _lastSeen)
                {
                    if (seen < quietSince && _lastSeen.TryRemove(KeyValuePair.Create(leaf, seen)))
                    {
                        link?.Reachable(leaf, false);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    private void Seen(string leaf)
    {
        var now = Environment.TickCount64;
        if (_lastSeen.TryGetValue(leaf, out _))
        {
            _lastSeen[leaf] = now;
            return;
        }

        _lastSeen[leaf] = now;
        link?.Reachable(leaf, true);
    }

    private static CoapResponse? Publishing(string topic, ClientPrincipal principal)
    {
        if (topic.Contains('+', StringComparison.Ordinal) || topic.Contains('#', StringComparison.Ordinal) || Encoding.UTF8.GetByteCount(topic) > MaxTopicBytes)
        {
            return CoapResponse.Text(CoapCode.BadRequest, $"'{topic}' is not a topic one may publish to: no wildcards, at most {MaxTopicBytes} bytes.");
        }

        return principal.Policy.CanPublish(topic) ? null
            : CoapResponse.Text(CoapCode.Forbidden, $"Leaf {principal.ThingName} may publish on its own topics only ($aws/things/{principal.ThingName}/…, devices/{principal.ThingName}/…, {principal.ThingName}/…), not '{topic}'.");
    }

    /// <summary>The leaf from thing= and token=; a refusal to a source that proved nothing carries no payload (RFC 7252 §11.3).</summary>
    private (string? Leaf, ClientPrincipal? Principal, CoapResponse? Refusal) Identify(CoapMessage message)
    {
        var query = message.Query;
        if (!query.TryGetValue("thing", out var thing) || !query.TryGetValue("token", out var token)
            || !leaves.Verify(thing, Encoding.UTF8.GetBytes(token)))
        {
            return (null, null, new CoapResponse(CoapCode.Unauthorized));
        }

        return (thing, authenticator.RestoredPrincipal(thing), null);
    }
}
