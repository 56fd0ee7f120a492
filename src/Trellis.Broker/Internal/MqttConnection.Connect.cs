using Trellis.Broker.Protocol;

namespace Trellis.Broker.Internal;

internal sealed partial class MqttConnection
{
    /// <summary>AWS IoT limits client ids to 128 characters.</summary>
    private const int MaxClientIdLength = 128;

    private bool HandleConnect(byte flags, ReadOnlySpan<byte> body)
    {
        if (!MqttDecoder.TryDecodeConnect(flags, body, out var packet, out var error))
        {
            _broker.Logger.ConnectRejected(packet.ClientId, RemoteAddress, error.Message);
            if (error.ReasonCode == ReasonCode.UnsupportedProtocolVersion || packet.ProtocolLevel == 5)
            {
                // MQTT 3.1.1 §3.1.2.2: an unsupported level gets CONNACK 0x01; MQTT 5 clients get the reason code.
                RefuseConnect(packet.ProtocolLevel == 5, error.ReasonCode, error.Message);
            }
            else
            {
                Abort();
            }

            return false;
        }

        var v5 = packet.IsV5;
        string? assigned = null;
        if (packet.ClientId.Length == 0)
        {
            if (!v5 && !packet.CleanStart)
            {
                // MQTT 3.1.1 §3.1.3.1: an empty id needs CleanSession=1.
                return RefuseConnect(false, ReasonCode.ClientIdentifierNotValid, "empty client id with clean session 0");
            }

            assigned = "trellis-" + Guid.NewGuid().ToString("N");
            packet.ClientId = assigned;
        }
        else if (packet.ClientId.Length > MaxClientIdLength)
        {
            return RefuseConnect(v5, ReasonCode.ClientIdentifierNotValid, $"client id longer than {MaxClientIdLength} characters");
        }

        if (v5 && packet.AuthenticationMethod is not null)
        {
            return RefuseConnect(v5, ReasonCode.BadAuthenticationMethod, $"authentication method '{packet.AuthenticationMethod}' is not supported");
        }

        Activity = _broker.Activity?.For(packet.ClientId);
        Activity?.ConnectionAttempted(RemoteAddress, _broker.NowMs);
        var auth = _broker.Authenticator.Authenticate(new ConnectRequest(packet.ClientId, packet.UserName, packet.Password, ClientCertificate, IsTls, RemoteAddress) { VerifiedUser = _transport.VerifiedUser });
        if (auth.Principal is null)
        {
            _broker.Logger.ConnectRejected(packet.ClientId, RemoteAddress, auth.Message ?? "not authorized");
            Activity?.AuthorizationFailed(_broker.NowMs);
            return RefuseConnect(v5, auth.ReasonCode, auth.Message);
        }

        if (!auth.Principal.Policy.CanConnect(packet.ClientId))
        {
            _broker.Logger.ConnectRejected(packet.ClientId, RemoteAddress, auth.Principal.Policy.ExplainConnect(packet.ClientId));
            Activity?.AuthorizationFailed(_broker.NowMs);
            return RefuseConnect(v5, ReasonCode.NotAuthorized, "iot:Connect not allowed for this client id");
        }

        if (auth.Principal.IsOperator && _broker.OperatorConflict(packet.ClientId) is { } conflict)
        {
            _broker.Logger.ConnectRejected(packet.ClientId, RemoteAddress, conflict);
            return RefuseConnect(v5, ReasonCode.NotAuthorized, conflict);
        }

        // What is kept of the CONNECT (not its user name or password: no secrets stay in memory).
        KeepAliveSeconds = packet.KeepAliveSeconds;
        Will = packet.Will;
        WillDelaySeconds = packet.WillDelaySeconds;
        _v5 = v5;
        Volatile.Write(ref _clientId, packet.ClientId);
        Principal = auth.Principal;
        ClientMaxPacketSize = packet.MaximumPacketSize;
        InflightWindow = Math.Min(_broker.Options.MaxInflightPerClient, packet.ReceiveMaximum);

        var sessionPresent = _broker.AttachSession(this, packet, auth.Principal, out var session, out var durable);
        Session = session;

        // A persistent session's CONNACK waits until the session is on disk: what the client is told
        // was kept survives a crash. Nothing is delivered before the CONNACK (§3.2.0-1).
        HoldAcksUntil(durable);
        var options = _broker.Options;
        lock (Gate)
        {
            MqttEncoder.WriteConnAck(Acks, v5, sessionPresent, ReasonCode.Success, v5
                ? new ConnAckProperties
                {
                    MaximumPacketSize = (uint)options.MaxPacketBytes,
                    TopicAliasMaximum = (ushort)options.TopicAliasMaximum,
                    ReceiveMaximum = (ushort)options.ReceiveMaximum,
                    AssignedClientIdentifier = assigned,
                    SessionExpiryInterval = packet.SessionExpirySeconds != session.ExpirySeconds ? session.ExpirySeconds : null,
                }
                : null);
            if (durable is null)
            {
                _deliveriesOpen = true;
            }
        }

        if (sessionPresent)
        {
            foreach (var id in session.PrepareResume())
            {
                SendControl(PacketType.PubRel, id);
            }
        }

        WakeHere();
        _broker.OnConnected(this);
        return true;
    }

    private bool RefuseConnect(bool v5, byte reason, string? message)
    {
        DisconnectReason = "FORBIDDEN_ACCESS";
        lock (Gate)
        {
            MqttEncoder.WriteConnAck(Control, v5, false, reason, v5 && message is not null ? new ConnAckProperties { ReasonString = message, MaximumPacketSize = (uint)_broker.Options.MaxPacketBytes } : null);
            _closeAfterFlush = true;
        }

        WakeHere();
        return false;
    }
}
