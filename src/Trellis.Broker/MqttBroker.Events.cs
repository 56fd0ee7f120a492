using System.Buffers;
using System.Text.Json;
using Trellis.Broker.Internal;

namespace Trellis.Broker;

/// <summary>AWS IoT lifecycle events (<c>$aws/events/presence/…</c>, <c>$aws/events/subscriptions/…</c>).</summary>
public sealed partial class MqttBroker
{
    internal void OnConnected(MqttConnection connection)
    {
        // AWS uses versionNumber to order a client's connect and disconnect events; a broker-wide
        // monotonic counter orders them without keeping state per client id.
        connection.VersionNumber = Interlocked.Increment(ref _eventVersion);
        var principal = connection.Principal!;
        Logger.ClientConnected(connection.ClientId, connection.RemoteAddress, connection.Listener, connection.IsV5 ? "5.0" : "3.1.1", principal.PrincipalIdentifier);
        _connectivity?.Connected(connection.ClientId, principal, connection.VersionNumber, NowMs);
        connection.Activity?.Connected(NowMs);
        WatchKeepAlive(connection);
        PublishEvent($"$aws/events/presence/connected/{connection.ClientId}", connection, "connected", w => { });
    }

    /// <summary>
    /// A device served by another protocol (CoAP) came online: the same connectivity record and
    /// presence event as an MQTT connect. Returns the event's version number, for its disconnect.
    /// </summary>
    public long DeviceConnected(string clientId, ClientPrincipal principal, string remoteAddress, string sessionIdentifier)
    {
        ArgumentNullException.ThrowIfNull(principal);
        var version = Interlocked.Increment(ref _eventVersion);
        _connectivity?.Connected(clientId, principal, version, NowMs);
        PublishEvent($"$aws/events/presence/connected/{clientId}", new EventSource(clientId, sessionIdentifier, principal.PrincipalIdentifier, remoteAddress, version), "connected", w => { });
        return version;
    }

    /// <summary>A device served by another protocol went offline (<paramref name="reason"/> in AWS's words).</summary>
    public void DeviceDisconnected(string clientId, ClientPrincipal principal, string remoteAddress, string sessionIdentifier, long version, string reason, bool clientInitiated)
    {
        ArgumentNullException.ThrowIfNull(principal);
        _connectivity?.Disconnected(clientId, principal, version, reason, NowMs);
        PublishEvent($"$aws/events/presence/disconnected/{clientId}", new EventSource(clientId, sessionIdentifier, principal.PrincipalIdentifier, remoteAddress, version), "disconnected", w =>
        {
            w.WriteBoolean("clientInitiatedDisconnect", clientInitiated);
            w.WriteString("disconnectReason", reason);
        });
    }

    /// <summary>Who a lifecycle event is about.</summary>
    private readonly record struct EventSource(string ClientId, string SessionIdentifier, string PrincipalIdentifier, string RemoteAddress, long VersionNumber)
    {
        public static EventSource Of(MqttConnection c) => new(c.ClientId, c.SessionIdentifier, c.Principal?.PrincipalIdentifier ?? string.Empty, c.RemoteAddress, c.VersionNumber);
    }

    /// <summary>Sets the observer of connects and disconnects (the thing connectivity the API and the index show).</summary>
    public void SetConnectivityObserver(IConnectivityObserver observer) => _connectivity = observer;

    /// <summary>Sets where each client's activity is counted (Device Defender's cloud-side metrics); null turns counting off.</summary>
    public void SetDeviceActivity(Trellis.Core.Monitoring.IDeviceActivityTable? table) => Activity = table;

    internal Trellis.Core.Monitoring.IDeviceActivityTable? Activity { get; private set; }

    internal void OnSubscriptionsChanged(MqttConnection connection, List<string> filters, bool subscribed)
    {
        if (filters.Count == 0)
        {
            return;
        }

        var eventType = subscribed ? "subscribed" : "unsubscribed";
        PublishEvent($"$aws/events/subscriptions/{eventType}/{connection.ClientId}", connection, eventType, w =>
        {
            w.WriteStartArray("topics");
            foreach (var filter in filters)
            {
                w.WriteStringValue(filter);
            }

            w.WriteEndArray();
        });
    }

    private void PublishDisconnectedEvent(MqttConnection connection)
    {
        connection.Activity?.Disconnected(NowMs);
        _connectivity?.Disconnected(connection.ClientId, connection.Principal, connection.VersionNumber, connection.DisconnectReason, NowMs);
        PublishEvent($"$aws/events/presence/disconnected/{connection.ClientId}", connection, "disconnected", w =>
        {
            w.WriteBoolean("clientInitiatedDisconnect", connection.ClientInitiated);
            w.WriteString("disconnectReason", connection.DisconnectReason);
        });
    }

    private void PublishEvent(string topic, MqttConnection connection, string eventType, Action<Utf8JsonWriter> extra) =>
        PublishEvent(topic, EventSource.Of(connection), eventType, extra);

    private void PublishEvent(string topic, EventSource source, string eventType, Action<Utf8JsonWriter> extra)
    {
        // Wildcards at the first level never match '$' topics (MQTT §4.7.2): with no '$' filter
        // subscribed, nobody can receive the event, so it is not built (no garbage per connect).
        if (_index.DollarCount == 0 && !(_observer?.Wants(topic) ?? false))
        {
            return;
        }

        var buffer = new ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("clientId", source.ClientId);
            w.WriteNumber("timestamp", NowMs);
            w.WriteString("eventType", eventType);
            w.WriteString("sessionIdentifier", source.SessionIdentifier);
            w.WriteString("principalIdentifier", source.PrincipalIdentifier);
            if (eventType is "connected" or "disconnected")
            {
                w.WriteString("ipAddress", source.RemoteAddress);
                w.WriteNumber("versionNumber", source.VersionNumber);
            }

            extra(w);
            w.WriteEndObject();
        }

        PublishFromServer(topic, buffer.WrittenMemory.ToArray(), qos: 1);
    }
}
