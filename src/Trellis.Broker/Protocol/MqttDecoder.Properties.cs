namespace Trellis.Broker.Protocol;

internal static partial class MqttDecoder
{
    private static void ReadConnectProperties(ref PacketReader reader, ConnectPacket packet)
    {
        var end = ReadPropertiesLength(ref reader);
        List<UserProperty>? users = null;
        var seen = 0UL;
        while (reader.Position < end)
        {
            var id = reader.ReadByte();
            if (id != PropUserProperty)
            {
                var bit = 1UL << (id & 63);
                if ((seen & bit) != 0)
                {
                    throw Duplicate(id);
                }

                seen |= bit;
            }

            switch (id)
            {
                case PropSessionExpiry:
                    packet.SessionExpirySeconds = reader.ReadUInt32();
                    break;
                case PropReceiveMaximum:
                    packet.ReceiveMaximum = reader.ReadUInt16();
                    if (packet.ReceiveMaximum == 0)
                    {
                        throw new MqttProtocolException(ReasonCode.ProtocolError, "receive maximum 0 (§3.1.2.11.3)");
                    }

                    break;
                case PropMaximumPacketSize:
                    packet.MaximumPacketSize = reader.ReadUInt32();
                    if (packet.MaximumPacketSize == 0)
                    {
                        throw new MqttProtocolException(ReasonCode.ProtocolError, "maximum packet size 0 (§3.1.2.11.4)");
                    }

                    break;
                case PropTopicAliasMaximum:
                    packet.TopicAliasMaximum = reader.ReadUInt16();
                    break;
                case PropRequestResponseInfo:
                    RequireBoolean(reader.ReadByte(), id);
                    break;
                case PropRequestProblemInfo:
                    packet.RequestProblemInformation = RequireBoolean(reader.ReadByte(), id) == 1;
                    break;
                case PropUserProperty:
                    (users ??= []).Add(new UserProperty(reader.ReadString("user property name"), reader.ReadString("user property value")));
                    break;
                case PropAuthMethod:
                    packet.AuthenticationMethod = reader.ReadString("authentication method");
                    break;
                case PropAuthData:
                    reader.ReadBinary();
                    break;
                default:
                    throw UnexpectedProperty(id, "CONNECT");
            }
        }

        packet.UserProperties = users;
    }

    private static PublishProperties? ReadWillProperties(ref PacketReader reader, ConnectPacket packet)
    {
        var end = ReadPropertiesLength(ref reader);
        var props = ReadMessageProperties(ref reader, end, allowWillDelay: true, out _, out var willDelay);
        packet.WillDelaySeconds = willDelay;
        return props;
    }

    private static PublishProperties? ReadPublishProperties(ref PacketReader reader, out ushort alias)
    {
        var end = ReadPropertiesLength(ref reader);
        return ReadMessageProperties(ref reader, end, allowWillDelay: false, out alias, out _);
    }

    private static PublishProperties? ReadMessageProperties(ref PacketReader reader, int end, bool allowWillDelay, out ushort alias, out uint willDelay)
    {
        alias = 0;
        willDelay = 0;
        if (reader.Position == end)
        {
            return null;
        }

        byte? format = null;
        uint? expiry = null;
        string? contentType = null;
        string? responseTopic = null;
        byte[]? correlation = null;
        List<UserProperty>? users = null;
        var seen = 0UL;
        while (reader.Position < end)
        {
            var id = reader.ReadByte();
            if (id != PropUserProperty)
            {
                var bit = 1UL << (id & 63);
                if ((seen & bit) != 0)
                {
                    throw Duplicate(id);
                }

                seen |= bit;
            }

            switch (id)
            {
                case PropPayloadFormat:
                    format = RequireBoolean(reader.ReadByte(), id);
                    break;
                case PropMessageExpiry:
                    expiry = reader.ReadUInt32();
                    break;
                case PropContentType:
                    contentType = reader.ReadString("content type");
                    break;
                case PropResponseTopic:
                    responseTopic = reader.ReadString("response topic");
                    if (!Core.Topics.TopicValidator.IsValidTopicName(responseTopic))
                    {
                        throw new MqttProtocolException(ReasonCode.ProtocolError, "response topic contains wildcards (§3.3.2.3.5)");
                    }

                    break;
                case PropCorrelationData:
                    correlation = reader.ReadBinary().ToArray();
                    break;
                case PropUserProperty:
                    (users ??= []).Add(new UserProperty(reader.ReadString("user property name"), reader.ReadString("user property value")));
                    break;
                case PropTopicAlias when !allowWillDelay:
                    alias = reader.ReadUInt16();
                    if (alias == 0)
                    {
                        throw new MqttProtocolException(ReasonCode.TopicAliasInvalid, "topic alias 0 (§3.3.2.3.4)");
                    }

                    break;
                case PropWillDelay when allowWillDelay:
                    willDelay = reader.ReadUInt32();
                    break;
                default:
                    // §3.3.2.3.8: a client must not send a subscription identifier in PUBLISH.
                    throw UnexpectedProperty(id, allowWillDelay ? "will properties" : "PUBLISH");
            }
        }

        var props = new PublishProperties
        {
            PayloadFormatIndicator = format,
            MessageExpiryInterval = expiry,
            ContentType = contentType,
            ResponseTopic = responseTopic,
            CorrelationData = correlation,
            UserProperties = users,
        };
        return props.IsEmpty ? null : props;
    }

    private static void SkipUserPropertiesOnly(ref PacketReader reader, string packet)
    {
        var end = ReadPropertiesLength(ref reader);
        while (reader.Position < end)
        {
            var id = reader.ReadByte();
            if (id != PropUserProperty)
            {
                throw UnexpectedProperty(id, packet);
            }

            reader.ReadString("user property name");
            reader.ReadString("user property value");
        }
    }

    private static void SkipReasonStringAndUserProperties(ref PacketReader reader, string packet)
    {
        var end = ReadPropertiesLength(ref reader);
        while (reader.Position < end)
        {
            var id = reader.ReadByte();
            switch (id)
            {
                case PropReasonString:
                    reader.ReadString("reason string");
                    break;
                case PropUserProperty:
                    reader.ReadString("user property name");
                    reader.ReadString("user property value");
                    break;
                default:
                    throw UnexpectedProperty(id, packet);
            }
        }
    }

    private static byte RequireBoolean(byte value, byte id) =>
        value <= 1 ? value : throw new MqttProtocolException(ReasonCode.ProtocolError, $"property 0x{id:X2} must be 0 or 1");
}
