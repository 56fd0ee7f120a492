namespace Trellis.Broker.Protocol;

/// <summary>
/// Decodes packet bodies. Pure functions over spans: bad input comes back as a
/// <see cref="DecodeError"/> carrying the MQTT 5 reason code, never as an escaping exception.
/// </summary>
internal static partial class MqttDecoder
{
    private const byte PropPayloadFormat = 0x01;
    private const byte PropMessageExpiry = 0x02;
    private const byte PropContentType = 0x03;
    private const byte PropResponseTopic = 0x08;
    private const byte PropCorrelationData = 0x09;
    private const byte PropSubscriptionId = 0x0B;
    private const byte PropSessionExpiry = 0x11;
    private const byte PropAuthMethod = 0x15;
    private const byte PropAuthData = 0x16;
    private const byte PropRequestProblemInfo = 0x17;
    private const byte PropWillDelay = 0x18;
    private const byte PropRequestResponseInfo = 0x19;
    private const byte PropReasonString = 0x1F;
    private const byte PropReceiveMaximum = 0x21;
    private const byte PropTopicAliasMaximum = 0x22;
    private const byte PropTopicAlias = 0x23;
    private const byte PropUserProperty = 0x26;
    private const byte PropMaximumPacketSize = 0x27;

    /// <summary>Decodes CONNECT. On a bad protocol name or level the error carries 0x84.</summary>
    public static bool TryDecodeConnect(byte flags, ReadOnlySpan<byte> body, out ConnectPacket packet, out DecodeError error)
    {
        packet = new ConnectPacket();
        error = default;
        try
        {
            if (flags == 6 && body.Length >= 1 && body[0] <= 4)
            {
                // 0x16 0x03 0x0N: a TLS record (handshake, version 3.N) read as an MQTT fixed header.
                throw new MqttProtocolException(ReasonCode.MalformedPacket,
                    "this is a TLS ClientHello, not an MQTT CONNECT: the client speaks TLS to the plain MQTT port; connect it to the TLS port (--mqtts, 8883 by default) or turn TLS off in the client");
            }

            if (flags != 0)
            {
                throw new MqttProtocolException(ReasonCode.MalformedPacket, "CONNECT fixed-header flags must be 0");
            }

            var reader = new PacketReader(body);
            var name = reader.ReadString("protocol name");
            var level = reader.ReadByte();
            packet.ProtocolLevel = level;
            var ok = (name == "MQTT" && level is 4 or 5) || (name == "MQIsdp" && level == 3);
            if (!ok)
            {
                // MQTT 3.1.1 §3.1.2.2 / MQTT 5 §3.1.2.2: answer with 0x01 (3.1.1) or 0x84 (5.0).
                throw new MqttProtocolException(ReasonCode.UnsupportedProtocolVersion, $"unsupported protocol name '{name}' or level {level}");
            }

            var connectFlags = reader.ReadByte();
            if ((connectFlags & 0x01) != 0)
            {
                throw new MqttProtocolException(ReasonCode.MalformedPacket, "CONNECT reserved flag must be 0");
            }

            var hasUser = (connectFlags & 0x80) != 0;
            var hasPassword = (connectFlags & 0x40) != 0;
            var willRetain = (connectFlags & 0x20) != 0;
            var willQos = (byte)((connectFlags >> 3) & 0x03);
            var hasWill = (connectFlags & 0x04) != 0;
            packet.CleanStart = (connectFlags & 0x02) != 0;
            if (willQos == 3 || (!hasWill && (willQos != 0 || willRetain)))
            {
                throw new MqttProtocolException(ReasonCode.MalformedPacket, "invalid will QoS or will flags");
            }

            if (level != 5 && hasPassword && !hasUser)
            {
                throw new MqttProtocolException(ReasonCode.MalformedPacket, "password flag set without user name flag (MQTT 3.1.1 §3.1.2.9)");
            }

            packet.KeepAliveSeconds = reader.ReadUInt16();
            if (packet.IsV5)
            {
                ReadConnectProperties(ref reader, packet);
            }

            packet.ClientId = reader.ReadString("client identifier");
            if (hasWill)
            {
                PublishProperties? willProps = null;
                if (packet.IsV5)
                {
                    willProps = ReadWillProperties(ref reader, packet);
                }

                var willTopic = reader.ReadString("will topic");
                if (!Core.Topics.TopicValidator.IsValidTopicName(willTopic))
                {
                    throw new MqttProtocolException(ReasonCode.TopicNameInvalid, "will topic is not a valid topic name");
                }

                var willPayload = reader.ReadBinary().ToArray();
                packet.Will = new MqttMessage
                {
                    Topic = willTopic,
                    Payload = willPayload,
                    Qos = willQos,
                    Retain = willRetain,
                    Properties = willProps,
                };
            }

            if (hasUser)
            {
                packet.UserName = reader.ReadString("user name");
            }

            if (hasPassword)
            {
                packet.Password = reader.ReadBinary().ToArray();
            }

            if (reader.Remaining != 0)
            {
                throw new MqttProtocolException(ReasonCode.MalformedPacket, "trailing bytes after CONNECT payload");
            }

            return true;
        }
        catch (MqttProtocolException e)
        {
            error = new DecodeError(e.ReasonCode, e.Message);
            return false;
        }
    }

    public static bool TryDecodePublish(byte flags, ReadOnlySpan<byte> body, bool v5, out PublishPacket packet, out DecodeError error) =>
        TryDecodePublish(flags, body, v5, null, out packet, out error);

    /// <summary>
    /// Decodes PUBLISH; <paramref name="topics"/> remembers the last topic of this connection, so a
    /// device publishing to the same topic again costs no string allocation or re-validation.
    /// </summary>
    public static bool TryDecodePublish(byte flags, ReadOnlySpan<byte> body, bool v5, TopicCache? topics, out PublishPacket packet, out DecodeError error)
    {
        packet = default;
        error = default;
        try
        {
            var qos = (byte)((flags >> 1) & 0x03);
            var dup = (flags & 0x08) != 0;
            if (qos == 3)
            {
                throw new MqttProtocolException(ReasonCode.MalformedPacket, "PUBLISH with QoS 3");
            }

            if (qos == 0 && dup)
            {
                throw new MqttProtocolException(ReasonCode.MalformedPacket, "DUP set on a QoS 0 PUBLISH (§3.3.1.1)");
            }

            var reader = new PacketReader(body);
            string topic;
            if (topics is not null && topics.TryGet(reader.PeekBinary(), out var cached))
            {
                reader.ReadBinary();
                topic = cached;
            }
            else
            {
                topic = reader.ReadString("topic name");
                if (topic.Length > 0 && !Core.Topics.TopicValidator.IsValidTopicName(topic))
                {
                    throw new MqttProtocolException(ReasonCode.TopicNameInvalid, $"topic name '{topic}' contains a wildcard");
                }

                topics?.Remember(topic);
            }

            ushort packetId = 0;
            if (qos > 0)
            {
                packetId = reader.ReadUInt16();
                if (packetId == 0)
                {
                    throw new MqttProtocolException(ReasonCode.MalformedPacket, "packet identifier 0");
                }
            }

            ushort alias = 0;
            PublishProperties? props = null;
            if (v5)
            {
                props = ReadPublishProperties(ref reader, out alias);
            }

            if (topic.Length == 0 && alias == 0)
            {
                throw new MqttProtocolException(v5 ? ReasonCode.ProtocolError : ReasonCode.MalformedPacket, "empty topic name without a topic alias");
            }

            var payload = reader.ReadRest().ToArray();
            packet = new PublishPacket(topic, packetId, qos, (flags & 0x01) != 0, dup, alias, payload, props);
            return true;
        }
        catch (MqttProtocolException e)
        {
            error = new DecodeError(e.ReasonCode, e.Message);
            return false;
        }
    }

    public static bool TryDecodeSubscribe(byte flags, ReadOnlySpan<byte> body, bool v5, out SubscribePacket packet, out DecodeError error)
    {
        packet = new SubscribePacket();
        error = default;
        try
        {
            if (flags != 0x02)
            {
                throw new MqttProtocolException(ReasonCode.MalformedPacket, "SUBSCRIBE fixed-header flags must be 0010 (§3.8.1)");
            }

            var reader = new PacketReader(body);
            packet.PacketId = ReadPacketId(ref reader);
            if (v5)
            {
                var end = ReadPropertiesLength(ref reader);
                while (reader.Position < end)
                {
                    var id = reader.ReadByte();
                    switch (id)
                    {
                        case PropSubscriptionId:
                            var sid = reader.ReadVarInt();
                            if (sid == 0)
                            {
                                throw new MqttProtocolException(ReasonCode.ProtocolError, "subscription identifier 0");
                            }

                            packet.SubscriptionIdentifier = (uint)sid;
                            break;
                        case PropUserProperty:
                            reader.ReadString("user property name");
                            reader.ReadString("user property value");
                            break;
                        default:
                            throw UnexpectedProperty(id, "SUBSCRIBE");
                    }
                }
            }

            while (reader.Remaining > 0)
            {
                var filter = reader.ReadString("topic filter");
                var options = reader.ReadByte();
                var maxQos = (byte)(options & 0x03);
                if (maxQos == 3 || (!v5 && (options & 0xFC) != 0) || (v5 && (options & 0xC0) != 0))
                {
                    throw new MqttProtocolException(ReasonCode.MalformedPacket, "invalid subscription options byte");
                }

                var retainHandling = (byte)((options >> 4) & 0x03);
                if (retainHandling == 3)
                {
                    throw new MqttProtocolException(ReasonCode.ProtocolError, "retain handling 3");
                }

                packet.Filters.Add(new TopicSubscription(
                    filter,
                    maxQos,
                    v5 && (options & 0x04) != 0,
                    v5 && (options & 0x08) != 0,
                    retainHandling,
                    packet.SubscriptionIdentifier));
            }

            if (packet.Filters.Count == 0)
            {
                throw new MqttProtocolException(ReasonCode.ProtocolError, "SUBSCRIBE without a topic filter (§3.8.3)");
            }

            return true;
        }
        catch (MqttProtocolException e)
        {
            error = new DecodeError(e.ReasonCode, e.Message);
            return false;
        }
    }

    public static bool TryDecodeUnsubscribe(byte flags, ReadOnlySpan<byte> body, bool v5, out UnsubscribePacket packet, out DecodeError error)
    {
        packet = new UnsubscribePacket();
        error = default;
        try
        {
            if (flags != 0x02)
            {
                throw new MqttProtocolException(ReasonCode.MalformedPacket, "UNSUBSCRIBE fixed-header flags must be 0010 (§3.10.1)");
            }

            var reader = new PacketReader(body);
            packet.PacketId = ReadPacketId(ref reader);
            if (v5)
            {
                SkipUserPropertiesOnly(ref reader, "UNSUBSCRIBE");
            }

            while (reader.Remaining > 0)
            {
                packet.Filters.Add(reader.ReadString("topic filter"));
            }

            if (packet.Filters.Count == 0)
            {
                throw new MqttProtocolException(ReasonCode.ProtocolError, "UNSUBSCRIBE without a topic filter (§3.10.3)");
            }

            return true;
        }
        catch (MqttProtocolException e)
        {
            error = new DecodeError(e.ReasonCode, e.Message);
            return false;
        }
    }

    /// <summary>PUBACK, PUBREC, PUBREL, PUBCOMP: packet id, then (v5) an optional reason and properties.</summary>
    public static bool TryDecodeAck(PacketType type, byte flags, ReadOnlySpan<byte> body, bool v5, out AckPacket packet, out DecodeError error)
    {
        packet = default;
        error = default;
        try
        {
            var expectedFlags = type == PacketType.PubRel ? 0x02 : 0x00;
            if (flags != expectedFlags)
            {
                throw new MqttProtocolException(ReasonCode.MalformedPacket, $"{type} fixed-header flags must be {expectedFlags}");
            }

            var reader = new PacketReader(body);
            var id = ReadPacketId(ref reader);
            byte reason = 0;
            if (v5 && reader.Remaining > 0)
            {
                reason = reader.ReadByte();
                if (reader.Remaining > 0)
                {
                    SkipReasonStringAndUserProperties(ref reader, type.ToString());
                }
            }

            if (reader.Remaining != 0)
            {
                throw new MqttProtocolException(ReasonCode.MalformedPacket, $"trailing bytes in {type}");
            }

            packet = new AckPacket(id, reason);
            return true;
        }
        catch (MqttProtocolException e)
        {
            error = new DecodeError(e.ReasonCode, e.Message);
            return false;
        }
    }

    /// <summary>DISCONNECT from a client: v5 may carry a reason and a new session expiry.</summary>
    public static bool TryDecodeDisconnect(byte flags, ReadOnlySpan<byte> body, bool v5, out byte reason, out uint? sessionExpiry, out DecodeError error)
    {
        reason = 0;
        sessionExpiry = null;
        error = default;
        try
        {
            if (flags != 0)
            {
                throw new MqttProtocolException(ReasonCode.MalformedPacket, "DISCONNECT fixed-header flags must be 0");
            }

            var reader = new PacketReader(body);
            if (!v5)
            {
                if (reader.Remaining != 0)
                {
                    throw new MqttProtocolException(ReasonCode.MalformedPacket, "MQTT 3.1.1 DISCONNECT has no body");
                }

                return true;
            }

            if (reader.Remaining > 0)
            {
                reason = reader.ReadByte();
            }

            if (reader.Remaining > 0)
            {
                var end = ReadPropertiesLength(ref reader);
                while (reader.Position < end)
                {
                    var id = reader.ReadByte();
                    switch (id)
                    {
                        case PropSessionExpiry:
                            sessionExpiry = reader.ReadUInt32();
                            break;
                        case PropReasonString:
                            reader.ReadString("reason string");
                            break;
                        case PropUserProperty:
                            reader.ReadString("user property name");
                            reader.ReadString("user property value");
                            break;
                        case 0x1C: // server reference: only servers send it, ignore
                            reader.ReadString("server reference");
                            break;
                        default:
                            throw UnexpectedProperty(id, "DISCONNECT");
                    }
                }
            }

            return true;
        }
        catch (MqttProtocolException e)
        {
            error = new DecodeError(e.ReasonCode, e.Message);
            return false;
        }
    }

    private static ushort ReadPacketId(ref PacketReader reader)
    {
        var id = reader.ReadUInt16();
        if (id == 0)
        {
            throw new MqttProtocolException(ReasonCode.MalformedPacket, "packet identifier 0");
        }

        return id;
    }

    private static int ReadPropertiesLength(ref PacketReader reader)
    {
        var length = reader.ReadVarInt();
        if (length > reader.Remaining)
        {
            throw new MqttProtocolException(ReasonCode.MalformedPacket, "property length beyond the packet");
        }

        return reader.Position + length;
    }

    private static MqttProtocolException UnexpectedProperty(byte id, string packet) =>
        new(ReasonCode.ProtocolError, $"property 0x{id:X2} is not allowed in {packet}");

    private static MqttProtocolException Duplicate(byte id) =>
        new(ReasonCode.ProtocolError, $"property 0x{id:X2} appears twice");
}
