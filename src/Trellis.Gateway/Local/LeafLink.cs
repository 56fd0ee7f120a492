using System.Collections.Concurrent;
using System.Text;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Trellis.Broker;
using Trellis.Gateway.Forwarding;

namespace Trellis.Gateway.Local;

/// <summary>
/// The leaves as things upstream (docs/gateway.md, "Leaves upstream"): on every connection to its
/// server the gateway registers each of its leaves on
/// <c>$trellis/gateways/{gateway}/leaves/{leaf}/register</c> (the server creates the thing, or
/// recognises it, with the attribute <c>gateway</c>), and it reports each leaf's local connects and
/// disconnects on <c>…/presence</c>, so the leaf shows online upstream exactly while it is
/// connected here and the gateway is connected there.
/// </summary>
public sealed partial class LeafLink : IConnectivityObserver
{
    private static readonly TimeSpan ReplyTimeout = TimeSpan.FromSeconds(15);

    private readonly string _gateway;
    private readonly LeafRegistry _leaves;
    private readonly Upstream _upstream;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, byte> _connected = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, TaskCompletionSource<(bool Accepted, JsonObject Body)>> _waiting = new(StringComparer.Ordinal);
    private readonly Channel<(string Leaf, bool Connected, string? Reason)> _changes = Channel.CreateUnbounded<(string, bool, string?)>(new() { SingleReader = true });
    private readonly ConcurrentDictionary<string, string> _refused = new(StringComparer.Ordinal);
    private readonly List<string> _polled = [];

    public LeafLink(string gateway, LeafRegistry leaves, Upstream upstream, ILogger logger)
    {
        // The server answers on the requesting connection alone, so no subscription is needed.
        (_gateway, _leaves, _upstream, _logger) = (gateway, leaves, upstream, logger);
    }

    /// <summary>Adds leaves that are polled, not connected (Modbus devices): online while they answer.</summary>
    public void AddPolled(IEnumerable<string> things) => _polled.AddRange(things);

    /// <summary>A polled leaf started (true) or stopped answering.</summary>
    public void Reachable(string leaf, bool answering)
    {
        if (answering)
        {
            _connected[leaf] = 0;
            _changes.Writer.TryWrite((leaf, true, null));
        }
        else if (_connected.TryRemove(leaf, out _))
        {
            _changes.Writer.TryWrite((leaf, false, "CONNECTION_LOST"));
        }
    }

    /// <summary>Leaves the server accepted on the last connection.</summary>
    public int Registered { get; private set; }

    /// <summary>Leaves the server refused, with its reason (logged once each).</summary>
    public IReadOnlyDictionary<string, string> Refused => _refused;

    private string Prefix => $"$trellis/gateways/{_gateway}/leaves";

    /// <summary>True for a message from upstream that answers one of this link's requests.</summary>
    public bool TryTakeReply(string topic, byte[] payload)
    {
        if (!topic.StartsWith(Prefix + "/", StringComparison.Ordinal))
        {
            return false;
        }

        var accepted = topic.EndsWith("/accepted", StringComparison.Ordinal);
        var request = topic[..topic.LastIndexOf('/')];
        if (_waiting.TryRemove(request, out var waiter))
        {
            JsonObject body;
            try
            {
                body = JsonNode.Parse(payload) as JsonObject ?? [];
            }
            catch (System.Text.Json.JsonException)
            {
                body = [];
            }

            waiter.TrySetResult((accepted, body));
        }

        return true;
    }

    /// <summary>Called by <see cref="Upstream"/> after each connect: registers every leaf, then reports the ones connected now.</summary>
    public async Task OnUpstreamConnectedAsync(CancellationToken ct)
    {
        var leaves = _leaves.Leaves.Select(l => l.Thing).Concat(_polled).Distinct(StringComparer.Ordinal).ToList();
        var answers = await Task.WhenAll(leaves.Select(leaf => RequestAsync(leaf, "register", new JsonObject(), ct)));
        var registered = 0;
        for (var i = 0; i < leaves.Count; i++)
        {
            var (accepted, body) = answers[i];
            if (accepted)
            {
                registered++;
                _refused.TryRemove(leaves[i], out _);
            }
            else
            {
                var reason = body["errorMessage"]?.GetValue<string>() ?? "no answer from upstream";
                if (_refused.TryGetValue(leaves[i], out var before) is false || before != reason)
                {
                    LogRegisterRefused(_logger, leaves[i], reason);
                }

                _refused[leaves[i]] = reason;
            }
        }

        Registered = registered;
        LogRegistered(_logger, registered, leaves.Count);
        foreach (var leaf in _connected.Keys)
        {
            _changes.Writer.TryWrite((leaf, true, null));
        }
    }

    /// <summary>Sends presence changes upstream while connected; ones made while away are covered by the next connect's report.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        try
        {
            await foreach (var (leaf, connected, reason) in _changes.Reader.ReadAllAsync(ct))
            {
                if (!_upstream.IsConnected || _refused.ContainsKey(leaf))
                {
                    continue; // the server marked the gateway's leaves offline when it went; the next connect reports afresh
                }

                var body = new JsonObject { ["connected"] = connected };
                if (reason is not null)
                {
                    body["disconnectReason"] = reason;
                }

                await RequestAsync(leaf, "presence", body, ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    void IConnectivityObserver.Connected(string clientId, ClientPrincipal principal, long version, long timestampMs)
    {
        if (principal.ThingName is { } leaf)
        {
            _connected[leaf] = 0;
            _changes.Writer.TryWrite((leaf, true, null));
        }
    }

    void IConnectivityObserver.Disconnected(string clientId, ClientPrincipal? principal, long version, string disconnectReason, long timestampMs)
    {
        if (version > 0 && principal?.ThingName is { } leaf && _connected.TryRemove(leaf, out _))
        {
            _changes.Writer.TryWrite((leaf, false, disconnectReason));
        }
    }

    private async Task<(bool Accepted, JsonObject Body)> RequestAsync(string leaf, string action, JsonObject body, CancellationToken ct)
    {
        var topic = $"{Prefix}/{leaf}/{action}";
        var waiter = new TaskCompletionSource<(bool, JsonObject)>(TaskCreationOptions.RunContinuationsAsynchronously);
        _waiting[topic] = waiter;
        try
        {
            await _upstream.PublishAsync(topic, Encoding.UTF8.GetBytes(body.ToJsonString()), ct);
            return await waiter.Task.WaitAsync(ReplyTimeout, ct);
        }
        catch (Exception e) when (e is TimeoutException or MQTTnet.Exceptions.MqttCommunicationException or InvalidOperationException)
        {
            var what = e is InvalidOperationException ? e.Message : $"no answer to {action} ({e.Message})";
            return (false, new JsonObject { ["errorMessage"] = $"{what}: let the gateway's policy allow iot:Publish and iot:Receive on $trellis/gateways/{_gateway}/* (docs/gateway.md)" });
        }
        finally
        {
            _waiting.TryRemove(topic, out _);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "{Registered} of {Leaves} leaves registered upstream as things of their own")]
    private static partial void LogRegistered(ILogger logger, int registered, int leaves);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Upstream refused leaf {Leaf}: {Reason}. Its messages still go upstream under the gateway's policy, but it does not show as a thing of this gateway")]
    private static partial void LogRegisterRefused(ILogger logger, string leaf, string reason);
}
