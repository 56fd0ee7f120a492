using System.Collections.Concurrent;
using System.Net;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Trellis.Broker;
using Trellis.Coap;
using Trellis.Core.Topics;

namespace Trellis.Server;

/// <summary>
/// CoAP observations (RFC 7641): a device that sends <c>GET /topics/{filter…}</c> or <c>GET
/// /things/{thing}/shadow</c> with Observe 0 is notified of each message on the filter, or each
/// delta of the shadow, as the same MQTT subscription would be: its policies must allow
/// <c>iot:Subscribe</c> on the filter and <c>iot:Receive</c> on each message's topic. Notifications
/// are non-confirmable, except one in every 16 and at least one a day, which are confirmable so that
/// a client that has gone away is found and dropped. A Reset to a notification, a GET with
/// Observe 1, or a confirmable notification never acknowledged ends the observation.
/// </summary>
internal sealed class CoapObservations
{
    /// <summary>
    /// Observations one source (address and port: one device, even behind a carrier's NAT) may hold;
    /// a further registration is answered 5.03 (a topic) or without Observe (a shadow, a job).
    /// </summary>
    public const int MaxPerSource = 32;

    /// <summary>Observations in all.</summary>
    public const int MaxTotal = 100_000;

    private const int ConfirmableEvery = 16;
    private static readonly TimeSpan ConfirmableAtLeastEvery = TimeSpan.FromHours(24);

    private readonly ConcurrentDictionary<(bool Secure, IPEndPoint Remote, string Token), Observation> _all = new();

    /// <summary>How many observations each source holds; changed only under <see cref="_gate"/>.</summary>
    private readonly Dictionary<(bool Secure, IPEndPoint Remote), int> _perSource = [];
    private readonly Lock _gate = new();
    private readonly Channel<PublishedMessage> _queue = Channel.CreateBounded<PublishedMessage>(new BoundedChannelOptions(10_000) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });
    private readonly TimeProvider _time;
    private CoapEndpoint? _plain;
    private CoapEndpoint? _secure;

    public CoapObservations(TimeProvider time) => _time = time;

    public int Count => _all.Count;

    /// <summary>Messages dropped because the notification queue was full.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    private long _dropped;

    /// <summary>Connects the registry to an endpoint that sends notifications: the plain one or the DTLS one (<paramref name="secure"/>).</summary>
    public void Attach(CoapEndpoint endpoint, bool secure)
    {
        if (secure)
        {
            _secure = endpoint;
        }
        else
        {
            _plain = endpoint;
        }

        endpoint.ObservationEnded += (remote, token) => Remove((secure, remote, Convert.ToHexString(token)));

        // A DTLS session that ends takes its observations with it: notifications could not reach it.
        endpoint.SessionEnded += (remote, byClient) =>
        {
            if (!Observes(secure, remote))
            {
                return;
            }

            foreach (var key in _all.Keys)
            {
                if (key.Secure == secure && key.Remote.Equals(remote))
                {
                    Remove(key);
                }
            }
        };
    }

    /// <summary>Registers (or, with the same token, renews) an observation; false when the source or the server holds too many.</summary>
    public bool Register(CoapRequest request, string filter, ClientPrincipal principal, bool json, out uint sequence)
    {
        var remote = request.Remote;
        var token = request.Message.Token;
        var key = (request.Peer is not null, remote, Convert.ToHexString(token));
        sequence = 0;
        var observation = new Observation(request.Peer is not null, remote, token, filter, principal, json, _time.GetTimestamp());
        lock (_gate)
        {
            if (!_all.ContainsKey(key))
            {
                var source = (key.Item1, remote);
                var held = _perSource.GetValueOrDefault(source);
                if (_all.Count >= MaxTotal || held >= MaxPerSource)
                {
                    return false;
                }

                _perSource[source] = held + 1;
            }

            _all[key] = observation;
        }

        return true;
    }

    private void Remove((bool Secure, IPEndPoint Remote, string Token) key)
    {
        lock (_gate)
        {
            if (_all.TryRemove(key, out _))
            {
                var source = (key.Secure, key.Remote);
                if (_perSource.TryGetValue(source, out var held) && held > 1)
                {
                    _perSource[source] = held - 1;
                }
                else
                {
                    _perSource.Remove(source);
                }
            }
        }
    }

    /// <summary>Whether a source (plain or DTLS) holds an observation now: the per-source count says so.</summary>
    public bool Observes(bool secure, IPEndPoint remote)
    {
        lock (_gate)
        {
            return _perSource.ContainsKey((secure, remote));
        }
    }

    public void Deregister(CoapRequest request) => Remove((request.Peer is not null, request.Remote, Convert.ToHexString(request.Message.Token)));

    /// <summary>Cheap and on the publisher's thread: whether any observation's filter matches.</summary>
    public bool Wants(string topic)
    {
        if (_all.IsEmpty || topic.StartsWith("$aws/rules/", StringComparison.Ordinal))
        {
            return false;
        }

        foreach (var (_, observation) in _all)
        {
            if (TopicMatcher.Matches(observation.Filter, topic))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Hands a routed message over to the notifier; when its queue is full the message is counted and not notified (observations are best effort, as QoS 0).</summary>
    public void Offer(in PublishedMessage message)
    {
        if (!_queue.Writer.TryWrite(message))
        {
            Interlocked.Increment(ref _dropped);
        }
    }

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var message in _queue.Reader.ReadAllAsync(cancellationToken))
            {
                foreach (var (_, o) in _all)
                {
                    if ((o.Secure ? _secure : _plain) is not { } endpoint || !TopicMatcher.Matches(o.Filter, message.Topic) || !o.Principal.Policy.CanReceive(message.Topic))
                    {
                        continue;
                    }

                    var now = _time.GetTimestamp();
                    var confirmable = ++o.SinceConfirmable >= ConfirmableEvery || _time.GetElapsedTime(o.LastConfirmable, now) >= ConfirmableAtLeastEvery;
                    var options = o.IsJson ? [CoapOption.Of(CoapOption.ContentFormat, CoapContentFormat.Json)] : Array.Empty<CoapOption>();
                    if (endpoint.Notify(o.Remote, o.Token, ++o.Sequence, new CoapResponse(CoapCode.Content, message.Payload, options), confirmable))
                    {
                        // Counted from a CON that went: one held back behind another outstanding CON is asked for again next time.
                        o.SinceConfirmable = 0;
                        o.LastConfirmable = now;
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private sealed class Observation(bool secure, IPEndPoint remote, byte[] token, string filter, ClientPrincipal principal, bool json, long registeredAt)
    {
        public bool Secure => secure;

        public IPEndPoint Remote => remote;

        public byte[] Token => token;

        public string Filter => filter;

        public ClientPrincipal Principal => principal;

        public bool IsJson => json;

        public uint Sequence { get; set; }

        public int SinceConfirmable { get; set; }

        public long LastConfirmable { get; set; } = registeredAt;
    }
}

/// <summary>Sends the notifications of CoAP observations for the life of the server.</summary>
internal sealed class CoapObservationsWorker(CoapObservations observations) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => observations.RunAsync(stoppingToken);
}
