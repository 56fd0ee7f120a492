using System.Buffers;
using System.IO.Pipelines;
using Trellis.Broker.Hosting;
using Trellis.Broker.Protocol;

namespace Trellis.Broker.Internal;

internal sealed partial class MqttConnection
{
    /// <summary>
    /// Serves the connection until it ends. Over the event loops' own transport the connection is
    /// called back when input arrives (<see cref="IInputListener"/>), so an idle connection holds no
    /// suspended read loop (its state machine was 192 bytes a connection); over the others
    /// (WebSockets through Kestrel, the runtime's socket engine with --mqtt-threads 0) it awaits its pipe.
    /// </summary>
    public Task RunAsync()
    {
        if (_input is InputBuffer)
        {
            Pump();
            return Task.CompletedTask;
        }

        return ReadLoopAsync();
    }

    private async Task ReadLoopAsync()
    {
        try
        {
            while (true)
            {
                // No token: a registration on it would be held by every idle connection; a close
                // cancels the pending read itself (CancelReads).
                var result = await _input.ReadAsync();
                var step = HandleRead(result);
                if (step == ReadStep.Stop)
                {
                    return;
                }

                if (step == ReadStep.Await)
                {
                    await AwaitHeldWorkAsync();
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception e)
        {
            LogFault(e);
        }
        finally
        {
            await ShutdownAsync();
        }
    }

    /// <summary>A fault closes only this connection (IOException from a reset socket, or a bug).</summary>
    private void LogFault(Exception e) => _broker.Logger.ConnectionFault(ClientId, RemoteAddress, e.GetType().Name + ": " + e.Message);

    void IInputListener.OnInput() => Pump();

    /// <summary>
    /// Handles what the input buffer holds, then asks to be called back (<see cref="IInputListener.OnInput"/>)
    /// when there is more; hands over to <see cref="PumpAfterAsync"/> when a batch left something to
    /// wait for that is not done yet. Exactly one of these runs at a time, and one of them ends the connection.
    /// </summary>
    private void Pump()
    {
        var input = (InputBuffer)_input;
        try
        {
            while (true)
            {
                if (!input.TryReadOrNotify(out var result, this))
                {
                    return; // called back when there is input
                }

                var step = HandleRead(result);
                if (step == ReadStep.Stop)
                {
                    break;
                }

                if (step == ReadStep.Await)
                {
                    // Usually pending (a journal commit, a service request): continue when it is done.
                    // Done already, read on here; recursing through the continuation would grow the
                    // stack by a frame per batch for as long as the waits keep completing at once.
                    var held = AwaitHeldWorkAsync();
                    if (!held.IsCompletedSuccessfully)
                    {
                        _ = PumpAfterAsync(held);
                        return;
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (ObjectDisposedException) when (_disposed)
        {
            return; // shut down already
        }
        catch (Exception e)
        {
            LogFault(e);
        }

        _ = ShutdownAsync();
    }

    private async Task PumpAfterAsync(Task held)
    {
        try
        {
            await held;
        }
        catch (OperationCanceledException)
        {
            await ShutdownAsync();
            return;
        }
        catch (Exception e)
        {
            LogFault(e);
            await ShutdownAsync();
            return;
        }

        Pump();
    }

    private enum ReadStep
    {
        /// <summary>Read on.</summary>
        Next,

        /// <summary>Wait for <see cref="AwaitHeldWorkAsync"/> before reading on.</summary>
        Await,

        /// <summary>The connection ends.</summary>
        Stop,
    }

    /// <summary>Handles the whole packets of one read and hands the rest back to the input.</summary>
    private ReadStep HandleRead(in ReadResult result)
    {
        if (result.IsCanceled)
        {
            _input.AdvanceTo(result.Buffer.Start);
            return ReadStep.Stop;
        }

        var maxPacket = _broker.Options.MaxPacketBytes;
        var buffer = result.Buffer;
        var keepGoing = true;
        var paused = false;
        var handled = false;
        while (keepGoing)
        {
            var status = MqttFrame.TryRead(buffer, maxPacket, out var header, out var headerLength, out var remainingLength);
            if (status == FrameStatus.Incomplete)
            {
                break;
            }

            if (status == FrameStatus.TooLarge)
            {
                _broker.Logger.PacketTooLarge(ClientId, RemoteAddress, headerLength + remainingLength, maxPacket);
                Reject(ReasonCode.PacketTooLarge, "CLIENT_ERROR", $"packet of {headerLength + (long)remainingLength} bytes exceeds the maximum of {maxPacket}");
                return ReadStep.Stop;
            }

            if (status == FrameStatus.MalformedLength)
            {
                Reject(ReasonCode.MalformedPacket, "CLIENT_ERROR", "remaining length longer than 4 bytes");
                return ReadStep.Stop;
            }

            var body = buffer.Slice(headerLength, remainingLength);
            keepGoing = body.IsSingleSegment
                ? HandlePacket(header, body.FirstSpan)
                : HandlePacket(header, body.ToArray());
            buffer = buffer.Slice(headerLength + remainingLength);
            handled = true;

            // Back-pressure at packet granularity: stop consuming as soon as a subscriber is
            // congested, or a service request is being handled; the rest stays in the input
            // (and then in the socket) until it drains.
            if (CongestedOn is not null || _pendingRequest is not null)
            {
                paused = true;
                break;
            }
        }

        // Acks for this batch go out now, on this thread, with the subscribers' deliveries. A
        // batch that produced nothing to send (QoS 0 publishes) schedules no writer at all.
        FlushDeferredWakes(wakeSelf: _control is { WrittenCount: > 0 });

        // Keep-alive counts whole packets; one clock read per read batch is enough.
        if (handled)
        {
            LastActivityMs = _broker.NowMs;
        }

        PartialSinceMs = buffer.IsEmpty || paused ? 0 : PartialSinceMs == 0 ? _broker.NowMs : PartialSinceMs;
        if (paused)
        {
            // Examined only what was consumed: the next read returns the rest at once, and the
            // input keeps its pause threshold. (Marking everything examined would let the
            // socket reader keep filling the input without bound while we wait.)
            _input.AdvanceTo(buffer.Start);
        }
        else
        {
            _input.AdvanceTo(buffer.Start, buffer.End);
        }

        // A peer that closed after sending still gets its buffered packets handled (they may
        // be acknowledged QoS 0 publishes or a DISCONNECT); stop only when nothing whole is left.
        if (!keepGoing || (result.IsCompleted && !paused))
        {
            return ReadStep.Stop;
        }

        return _durableWait is not null || _pendingRequest is not null || (Session is not null && CongestedOn is not null)
            ? ReadStep.Await
            : ReadStep.Next;
    }

    /// <summary>What a read batch left to wait for: its journal writes, a service request, a congested subscriber.</summary>
    private async Task AwaitHeldWorkAsync()
    {
        if (_durableWait is { } durable)
        {
            await ReleaseHeldAcksAsync(durable);
        }

        if (_pendingRequest is { } request)
        {
            await CompleteRequestAsync(request);
        }

        if (Session is not null)
        {
            await _broker.WaitForCongestionAsync(this);
        }
    }

    /// <summary>Waits for a service request of this client (or for the rules to take its message), then sends its acknowledgement.</summary>
    private async Task CompleteRequestAsync(Task request)
    {
        _pendingRequest = null;
        try
        {
            await request.WaitAsync(Closed);
        }
        catch (OperationCanceledException) when (Closed.IsCancellationRequested)
        {
            return; // the connection is closing: no acknowledgement (the request itself still completes)
        }
        catch (Exception e)
        {
            _broker.Logger.ServiceRequestFailed(ClientId, e.GetType().Name + ": " + e.Message);
            if (FindNotTaken(e) is { } notTaken && _pendingAck.Qos > 0)
            {
                // The message was not taken: never acknowledge it as if it were.
                if (!IsV5)
                {
                    DisconnectReason = "SERVER_ERROR";
                    Abort();
                    return;
                }

                _pendingAck = (_pendingAck.Qos, _pendingAck.PacketId, notTaken.ReasonCode);
            }
        }

        var (qos, packetId, reason) = _pendingAck;
        if (qos == 0)
        {
            return;
        }

        SendControl(qos == 1 ? PacketType.PubAck : PacketType.PubRec, packetId, reason);
        Wake();
    }

    private static PublishNotTakenException? FindNotTaken(Exception e) => e switch
    {
        PublishNotTakenException n => n,
        AggregateException a => a.InnerExceptions.Select(FindNotTaken).FirstOrDefault(n => n is not null),
        _ => null,
    };

    /// <summary>Handles one packet. Returns false when the connection must end.</summary>
    private bool HandlePacket(byte header, ReadOnlySpan<byte> body)
    {
        var type = (PacketType)(header >> 4);
        var flags = (byte)(header & 0x0F);
        if (!IsConnected)
        {
            if (type != PacketType.Connect)
            {
                // MQTT §3.1.0-1: the first packet must be CONNECT, else close without a CONNACK.
                _broker.Logger.FirstPacketNotConnect(RemoteAddress, type.ToString());
                DisconnectReason = "CLIENT_ERROR";
                Abort();
                return false;
            }

            return HandleConnect(flags, body);
        }

        var v5 = IsV5;
        switch (type)
        {
            case PacketType.Publish:
                return HandlePublish(flags, body, v5);
            case PacketType.PubAck:
                return HandleAck(type, flags, body, v5);
            case PacketType.PubRec:
                return HandleAck(type, flags, body, v5);
            case PacketType.PubRel:
                return HandleAck(type, flags, body, v5);
            case PacketType.PubComp:
                return HandleAck(type, flags, body, v5);
            case PacketType.Subscribe:
                return HandleSubscribe(flags, body, v5);
            case PacketType.Unsubscribe:
                return HandleUnsubscribe(flags, body, v5);
            case PacketType.PingReq:
                if (flags != 0 || body.Length != 0)
                {
                    return Reject(ReasonCode.MalformedPacket, "CLIENT_ERROR", "malformed PINGREQ");
                }

                lock (Gate)
                {
                    MqttEncoder.WritePingResp(Acks);
                }

                return true;
            case PacketType.Disconnect:
                return HandleDisconnect(flags, body, v5);
            case PacketType.Connect:
                return Reject(ReasonCode.ProtocolError, "CLIENT_ERROR", "second CONNECT on one connection (§3.1.0-2)");
            case PacketType.Auth:
                return Reject(ReasonCode.ProtocolError, "CLIENT_ERROR", "AUTH without an authentication method in CONNECT");
            default:
                return Reject(ReasonCode.MalformedPacket, "CLIENT_ERROR", $"packet type {(int)type} is not sent by clients");
        }
    }

    /// <summary>Logs a protocol violation and closes (with DISCONNECT for MQTT 5). Always returns false.</summary>
    private bool Reject(byte reason, string awsReason, string message)
    {
        _broker.Logger.ProtocolViolation(ClientId, RemoteAddress, message);
        Close(reason, awsReason, message);
        return false;
    }

    private bool HandlePublish(byte flags, ReadOnlySpan<byte> body, bool v5)
    {
        if (!MqttDecoder.TryDecodePublish(flags, body, v5, _topics ??= new TopicCache(), out var packet, out var error))
        {
            return Reject(error.ReasonCode, "CLIENT_ERROR", error.Message);
        }

        var topic = packet.Topic;
        if (packet.TopicAlias != 0)
        {
            if (packet.TopicAlias > _broker.Options.TopicAliasMaximum)
            {
                return Reject(ReasonCode.TopicAliasInvalid, "CLIENT_ERROR", $"topic alias {packet.TopicAlias} above the maximum {_broker.Options.TopicAliasMaximum}");
            }

            _topicAliases ??= new string?[_broker.Options.TopicAliasMaximum + 1];
            if (topic.Length > 0)
            {
                _topicAliases[packet.TopicAlias] = topic;
            }
            else if (_topicAliases[packet.TopicAlias] is { } known)
            {
                topic = known;
            }
            else
            {
                return Reject(ReasonCode.ProtocolError, "CLIENT_ERROR", $"topic alias {packet.TopicAlias} used before it was set");
            }
        }

        _broker.Metrics.Received();
        Activity?.MessageSent(packet.Payload.Length);
        if (!IsPublishAllowed(topic, packet.Retain))
        {
            _broker.Metrics.Denied();
            Activity?.AuthorizationFailed(_broker.NowMs);
            _broker.Logger.PublishDenied(ClientId, topic);
            if (!v5)
            {
                // MQTT 3.1.1 has no negative PUBACK: close the connection, as AWS IoT does.
                DisconnectReason = "FORBIDDEN_ACCESS";
                Abort();
                return false;
            }

            if (packet.Qos == 1)
            {
                SendControl(PacketType.PubAck, packet.PacketId, ReasonCode.NotAuthorized);
            }
            else if (packet.Qos == 2)
            {
                SendControl(PacketType.PubRec, packet.PacketId, ReasonCode.NotAuthorized);
            }

            return true;
        }

        if (packet.Qos > 0 && v5 && !(packet.Qos == 2 && Session!.HasIncomingQos2(packet.PacketId))
            && _heldQos1 + (_pendingRequest is null ? 0 : 1) + Session!.IncomingQos2Count >= _broker.Options.ReceiveMaximum)
        {
            // MQTT 5 §3.3.4: more unacknowledged QoS 1/2 publishes than the Receive Maximum in our CONNACK.
            return Reject(ReasonCode.ReceiveMaximumExceeded, "CLIENT_ERROR", $"more than Receive Maximum {_broker.Options.ReceiveMaximum} QoS 1/2 publishes unacknowledged");
        }

        if (packet.Qos == 2 && !Session!.BeginIncomingQos2(packet.PacketId))
        {
            // A resend of a QoS 2 message we already routed: acknowledge again, do not deliver twice.
            SendControl(PacketType.PubRec, packet.PacketId);
            return true;
        }

        if (packet.Qos > 0 && v5 && _broker.Sequences.IsRepeat(ClientId, packet.Properties?.UserProperties))
        {
            // A numbered message this client sent before (a gateway resending its queue after a
            // crash): acknowledged again, not routed twice.
            _broker.Metrics.Repeated();
            SendControl(packet.Qos == 1 ? PacketType.PubAck : PacketType.PubRec, packet.PacketId);
            return true;
        }

        var message = new MqttMessage
        {
            Topic = topic,
            Payload = packet.Payload,
            Qos = packet.Qos,
            Retain = packet.Retain,
            Properties = packet.Properties,
            SenderClientId = ClientId,
            ReceivedAtMs = _broker.NowMs,
        };

        // The rules see the message first. When their queue is full the acknowledgement waits
        // (and this connection stops reading) until they take it: slowed down, never dropped.
        var refused = _broker.Observe(message, Session);
        var observing = refused is { } late ? _broker.ObserveAsync(late).AsTask() : null;
        if (topic.StartsWith("$aws/rules/", StringComparison.Ordinal))
        {
            // Basic Ingest: straight to the rule, no fan-out to subscribers (as on AWS).
            if (observing is not null)
            {
                _pendingRequest = observing;
                _pendingAck = (packet.Qos, packet.PacketId, ReasonCode.Success);
                return true;
            }

            if (packet.Qos == 1)
            {
                SendControl(PacketType.PubAck, packet.PacketId);
            }
            else if (packet.Qos == 2)
            {
                SendControl(PacketType.PubRec, packet.PacketId);
            }

            return true;
        }

        // Copies kept for persistent sessions must be on disk before the acknowledgement.
        var matched = _broker.Publish(message, Session, out _, out var durable);
        HoldAcksUntil(durable);
        if (packet.Qos == 1 && _durableWait is not null)
        {
            _heldQos1++;
        }

        if (_broker.HandlerFor(topic) is { } handler)
        {
            // A service request (shadow …): handled off this thread; the read loop waits for it
            // and only then acknowledges, so a PUBACK means the request was handled.
            var request = RunHandlerAsync(handler, topic, packet.Payload, ClientId);
            _pendingRequest = observing is null ? request : Task.WhenAll(request, observing);
            _pendingAck = (packet.Qos, packet.PacketId, ReasonCode.Success);
            return true;
        }

        var reason = matched == 0 && v5 ? ReasonCode.NoMatchingSubscribers : ReasonCode.Success;
        if (observing is not null)
        {
            _pendingRequest = observing;
            _pendingAck = (packet.Qos, packet.PacketId, reason);
            return true;
        }

        if (packet.Qos == 1)
        {
            SendControl(PacketType.PubAck, packet.PacketId, reason);
        }
        else if (packet.Qos == 2)
        {
            SendControl(PacketType.PubRec, packet.PacketId, reason);
        }

        return true;
    }

    /// <summary>
    /// Runs a service handler on the thread pool. A method of its own so that the lambda's captures
    /// are allocated only for service requests, not at the start of every publish.
    /// </summary>
    private static Task RunHandlerAsync(IServerTopicHandler handler, string topic, ReadOnlyMemory<byte> payload, string clientId) =>
        Task.Run(() => handler.HandleAsync(topic, payload, clientId));

    private bool IsPublishAllowed(string topic, bool retain)
    {
        var principal = Principal!;
        if (principal.Refresh(_broker.Authenticator.PolicyGeneration))
        {
            _publishAllowed?.Clear();
            Session!.ClearReceiveCache();
        }

        // Cache per connection: most devices publish to a handful of topics.
        _publishAllowed ??= new Dictionary<string, bool>(StringComparer.Ordinal);
        if (!_publishAllowed.TryGetValue(topic, out var allowed))
        {
            allowed = principal.Policy.CanPublish(topic);
            if (_publishAllowed.Count >= 1024)
            {
                _publishAllowed.Clear();
            }

            _publishAllowed[topic] = allowed;
        }

        return allowed && (!retain || principal.Policy.CanRetainPublish(topic));
    }

    private bool HandleAck(PacketType type, byte flags, ReadOnlySpan<byte> body, bool v5)
    {
        if (!MqttDecoder.TryDecodeAck(type, flags, body, v5, out var ack, out var error))
        {
            return Reject(error.ReasonCode, "CLIENT_ERROR", error.Message);
        }

        var session = Session!;
        switch (type)
        {
            case PacketType.PubAck:
                if (session.Acknowledge(ack.PacketId, out var acknowledged))
                {
                    _broker.ForgetJournaled(acknowledged);
                    Wake();
                }

                break;
            case PacketType.PubRec:
                if (ack.ReasonCode >= 0x80)
                {
                    // The client refused the message: the QoS 2 flow ends here (§4.3.3).
                    session.Received(ack.PacketId);
                    session.Completed(ack.PacketId, out var refused);
                    _broker.ForgetJournaled(refused);
                    Wake();
                }
                else
                {
                    var known = session.Received(ack.PacketId);
                    SendControl(PacketType.PubRel, ack.PacketId, known ? ReasonCode.Success : ReasonCode.PacketIdentifierNotFound);
                }

                break;
            case PacketType.PubRel:
                var released = session.ReleaseIncomingQos2(ack.PacketId);
                SendControl(PacketType.PubComp, ack.PacketId, released ? ReasonCode.Success : ReasonCode.PacketIdentifierNotFound);
                break;
            case PacketType.PubComp:
                if (session.Completed(ack.PacketId, out var completed))
                {
                    _broker.ForgetJournaled(completed);
                    Wake();
                }

                break;
        }

        return true;
    }

    private bool HandleSubscribe(byte flags, ReadOnlySpan<byte> body, bool v5)
    {
        if (!MqttDecoder.TryDecodeSubscribe(flags, body, v5, out var packet, out var error))
        {
            return Reject(error.ReasonCode, "CLIENT_ERROR", error.Message);
        }

        var principal = Principal!;
        if (principal.Refresh(_broker.Authenticator.PolicyGeneration))
        {
            _publishAllowed?.Clear();
            Session!.ClearReceiveCache();
        }

        Span<byte> codes = packet.Filters.Count <= 64 ? stackalloc byte[packet.Filters.Count] : new byte[packet.Filters.Count];
        var granted = new List<TopicSubscription>(packet.Filters.Count);
        var withRetained = new List<TopicSubscription>();
        for (var i = 0; i < packet.Filters.Count; i++)
        {
            codes[i] = _broker.Subscribe(this, packet.Filters[i], v5, out var accepted, out var sendRetained);
            if (accepted is not null)
            {
                granted.Add(accepted);
                if (sendRetained)
                {
                    withRetained.Add(accepted);
                }
            }
        }

        // A persistent session's SUBACK waits until its subscriptions are on disk.
        HoldAcksUntil(_broker.OnSessionChangedAsync(Session!));
        lock (Gate)
        {
            MqttEncoder.WriteSubAck(Acks, packet.PacketId, codes, v5);
        }

        // Retained messages follow the SUBACK (§3.3.1.3).
        foreach (var subscription in withRetained)
        {
            _broker.DeliverRetained(Session!, subscription);
        }

        _broker.OnSubscriptionsChanged(this, granted.Select(s => s.Filter).ToList(), subscribed: true);
        return true;
    }

    private bool HandleUnsubscribe(byte flags, ReadOnlySpan<byte> body, bool v5)
    {
        if (!MqttDecoder.TryDecodeUnsubscribe(flags, body, v5, out var packet, out var error))
        {
            return Reject(error.ReasonCode, "CLIENT_ERROR", error.Message);
        }

        Span<byte> codes = packet.Filters.Count <= 64 ? stackalloc byte[packet.Filters.Count] : new byte[packet.Filters.Count];
        var removed = new List<string>();
        for (var i = 0; i < packet.Filters.Count; i++)
        {
            var existed = _broker.Unsubscribe(Session!, packet.Filters[i]);
            codes[i] = existed ? ReasonCode.Success : ReasonCode.NoSubscriptionExisted;
            if (existed)
            {
                removed.Add(packet.Filters[i]);
            }
        }

        if (removed.Count > 0)
        {
            HoldAcksUntil(_broker.OnSessionChangedAsync(Session!));
        }

        lock (Gate)
        {
            MqttEncoder.WriteUnsubAck(Acks, packet.PacketId, codes, v5);
        }

        _broker.OnSubscriptionsChanged(this, removed, subscribed: false);
        return true;
    }

    private bool HandleDisconnect(byte flags, ReadOnlySpan<byte> body, bool v5)
    {
        if (!MqttDecoder.TryDecodeDisconnect(flags, body, v5, out var reason, out var expiry, out var error))
        {
            return Reject(error.ReasonCode, "CLIENT_ERROR", error.Message);
        }

        if (expiry is { } newExpiry)
        {
            if (Session!.ExpirySeconds == 0 && newExpiry != 0)
            {
                // MQTT 5 §3.14.2.2.2: a session that was to end may not be extended at DISCONNECT.
                return Reject(ReasonCode.ProtocolError, "CLIENT_ERROR", "session expiry set at DISCONNECT after CONNECT gave 0");
            }

            Session.ExpirySeconds = (uint)Math.Min(newExpiry, _broker.Options.MaxSessionExpirySeconds);
        }

        // §3.14.4: DISCONNECT 0x04 asks for the will to be published; any other normal DISCONNECT discards it.
        WillDiscarded = reason != ReasonCode.DisconnectWithWill;
        ClientInitiated = true;
        DisconnectReason = "CLIENT_INITIATED_DISCONNECT";
        _transport.PeerDisconnected();
        return false;
    }
}
