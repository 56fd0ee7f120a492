using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Hosting;
using Trellis.Broker;

namespace Trellis.Server;

/// <summary>
/// CoAP devices online and offline as MQTT devices are (AWS's presence events on
/// <c>$aws/events/presence/…/{clientId}</c>, the thing's connectivity in the API and the fleet
/// index). UDP has no connection, so a device counts as connected from its first accepted request
/// while it keeps talking or observing: it goes offline when its DTLS session ends (closed by the
/// device: CLIENT_INITIATED_DISCONNECT; failed: CONNECTION_LOST), or when it has sent nothing for
/// the idle time and observes nothing (MQTT_KEEP_ALIVE_TIMEOUT, the same silence as a missed
/// keep-alive).
/// </summary>
internal sealed class CoapPresence(MqttBroker broker, CoapObservations observations, TimeSpan idle)
{
    private readonly ConcurrentDictionary<string, Session> _online = new(StringComparer.Ordinal);

    public TimeSpan Idle => idle;

    public int Online => _online.Count;

    /// <summary>A request from <paramref name="clientId"/> was accepted: online now if it was not.</summary>
    public void Seen(string clientId, ClientPrincipal principal, IPEndPoint remote, bool secure)
    {
        var now = Environment.TickCount64;
        if (_online.TryGetValue(clientId, out var session))
        {
            session.LastSeen = now;
            session.Remote = remote;
            session.Secure = secure;
            return;
        }

        var fresh = new Session(principal, remote, secure, now, Guid.NewGuid().ToString());
        if (_online.TryAdd(clientId, fresh))
        {
            fresh.Version = broker.DeviceConnected(clientId, principal, remote.Address.ToString(), fresh.Identifier);
        }
    }

    /// <summary>A DTLS session ended: the devices last seen through it go offline.</summary>
    public void SessionEnded(IPEndPoint remote, bool closedByClient)
    {
        foreach (var (clientId, session) in _online)
        {
            if (session.Secure && session.Remote.Equals(remote))
            {
                Offline(clientId, session, closedByClient ? "CLIENT_INITIATED_DISCONNECT" : "CONNECTION_LOST", closedByClient);
            }
        }
    }

    /// <summary>Devices silent for the idle time and observing nothing go offline.</summary>
    public void Sweep()
    {
        var now = Environment.TickCount64;
        foreach (var (clientId, session) in _online)
        {
            if (now - session.LastSeen > idle.TotalMilliseconds && !observations.Observes(session.Secure, session.Remote))
            {
                Offline(clientId, session, "MQTT_KEEP_ALIVE_TIMEOUT", clientInitiated: false);
            }
        }
    }

    private void Offline(string clientId, Session session, string reason, bool clientInitiated)
    {
        if (_online.TryRemove(new KeyValuePair<string, Session>(clientId, session)))
        {
            broker.DeviceDisconnected(clientId, session.Principal, session.Remote.Address.ToString(), session.Identifier, session.Version, reason, clientInitiated);
        }
    }

    private sealed class Session(ClientPrincipal principal, IPEndPoint remote, bool secure, long lastSeen, string identifier)
    {
        public ClientPrincipal Principal => principal;

        public string Identifier => identifier;

        public IPEndPoint Remote { get; set; } = remote;

        public bool Secure { get; set; } = secure;

        public long LastSeen { get; set; } = lastSeen;

        public long Version { get; set; }
    }
}

/// <summary>Sweeps CoAP presence for the life of the server.</summary>
internal sealed class CoapPresenceWorker(CoapPresence presence) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(Math.Clamp(presence.Idle.TotalSeconds / 4, 0.25, 5)));
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                presence.Sweep();
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
