using System.Buffers;
using Trellis.Broker.Protocol;

namespace Trellis.UnitTests.Protocol;

public sealed class MqttCodecTests
{
    private static readonly byte[] ConnectV311 =
    [
        0x10, 0x10, 0x00, 0x04, (byte)'M', (byte)'Q', (byte)'T', (byte)'T', 0x04, 0x02, 0x00, 0x3C,
        0x00, 0x04, (byte)'d', (byte)'e', (byte)'v', (byte)'1',
    ];

    [Fact]
    public void Frame_reads_header_and_length()
    {
        var status = MqttFrame.TryRead(new ReadOnlySequence<byte>(ConnectV311), 1024, out var header, out var headerLength, out var remaining);

        Assert.Equal(FrameStatus.Complete, status);
        Assert.Equal(0x10, header);
        Assert.Equal(2, headerLength);
        Assert.Equal(16, remaining);
    }

    [Fact]
    public void Frame_is_incomplete_until_the_body_arrives()
    {
        var status = MqttFrame.TryRead(new ReadOnlySequence<byte>(ConnectV311.AsMemory(0, 10)), 1024, out _, out _, out _);

        Assert.Equal(FrameStatus.Incomplete, status);
    }

    [Fact]
    public void Remaining_length_over_four_bytes_is_malformed()
    {
        var status = MqttFrame.TryRead(new ReadOnlySequence<byte>(new byte[] { 0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01 }), int.MaxValue, out _, out _, out _);

        Assert.Equal(FrameStatus.MalformedLength, status);
    }

    [Fact]
    public void Declared_length_over_the_maximum_is_refused_before_the_body_arrives()
    {
        // Declares 2 MiB; only the header has arrived.
        var status = MqttFrame.TryRead(new ReadOnlySequence<byte>(new byte[] { 0x30, 0x80, 0x80, 0x80, 0x01 }), 128 * 1024, out _, out _, out var remaining);

        Assert.Equal(FrameStatus.TooLarge, status);
        Assert.Equal(2_097_152, remaining);
    }

    [Fact]
    public void Connect_v311_decodes()
    {
        Assert.True(MqttDecoder.TryDecodeConnect(0, ConnectV311.AsSpan(2), out var connect, out _));

        Assert.Equal(4, connect.ProtocolLevel);
        Assert.Equal("dev1", connect.ClientId);
        Assert.True(connect.CleanStart);
        Assert.Equal(60, connect.KeepAliveSeconds);
    }

    [Fact]
    public void Connect_with_wrong_protocol_name_is_unsupported_version()
    {
        var body = ConnectV311.AsSpan(2).ToArray();
        body[2] = (byte)'X';

        Assert.False(MqttDecoder.TryDecodeConnect(0, body, out _, out var error));
        Assert.Equal(ReasonCode.UnsupportedProtocolVersion, error.ReasonCode);
    }

    [Fact]
    public void Connect_with_wrong_level_is_unsupported_version()
    {
        var body = ConnectV311.AsSpan(2).ToArray();
        body[6] = 7;

        Assert.False(MqttDecoder.TryDecodeConnect(0, body, out _, out var error));
        Assert.Equal(ReasonCode.UnsupportedProtocolVersion, error.ReasonCode);
    }

    [Fact]
    public void Publish_with_invalid_utf8_topic_is_malformed()
    {
        byte[] body = [0x00, 0x03, (byte)'a', 0xC3, 0x28, (byte)'x'];

        Assert.False(MqttDecoder.TryDecodePublish(0, body, false, out _, out var error));
        Assert.Equal(ReasonCode.MalformedPacket, error.ReasonCode);
    }

    [Theory]
    [InlineData("a/+")]
    [InlineData("a/#")]
    public void Publish_with_wildcard_topic_is_refused(string topic)
    {
        var writer = new ArrayBufferWriter<byte>();
        MqttEncoder.WritePublish(writer, new MqttMessage { Topic = topic, Payload = new byte[] { 1 } }, 0, 0, false, false, null);
        var frame = writer.WrittenSpan.ToArray();

        Assert.False(MqttDecoder.TryDecodePublish(0, frame.AsSpan(2), false, out _, out var error));
        Assert.Equal(ReasonCode.TopicNameInvalid, error.ReasonCode);
    }

    [Fact]
    public void Publish_v5_round_trips_with_properties()
    {
        var message = new MqttMessage
        {
            Topic = "t/1",
            Payload = "hello"u8.ToArray(),
            Qos = 1,
            Properties = new PublishProperties
            {
                ContentType = "text/plain",
                ResponseTopic = "r/1",
                CorrelationData = [1, 2, 3],
                UserProperties = [new UserProperty("k", "v")],
                PayloadFormatIndicator = 1,
            },
        };
        var writer = new ArrayBufferWriter<byte>();
        MqttEncoder.WritePublish(writer, message, 1, 42, true, false, [7, 300]);
        var frame = writer.WrittenSpan.ToArray();
        Assert.Equal(FrameStatus.Complete, MqttFrame.TryRead(new ReadOnlySequence<byte>(frame), 4096, out var header, out var headerLength, out var remaining));
        Assert.Equal(frame.Length, headerLength + remaining);

        // A client may not send a subscription identifier: encode without it to decode as a client's publish.
        writer.Clear();
        MqttEncoder.WritePublish(writer, message, 1, 42, true, false, null);
        frame = writer.WrittenSpan.ToArray();
        MqttFrame.TryRead(new ReadOnlySequence<byte>(frame), 4096, out header, out headerLength, out _);
        Assert.True(MqttDecoder.TryDecodePublish((byte)(header & 0x0F), frame.AsSpan(headerLength), true, out var decoded, out var error), error.Message);

        Assert.Equal("t/1", decoded.Topic);
        Assert.Equal(42, decoded.PacketId);
        Assert.Equal("hello"u8.ToArray(), decoded.Payload.ToArray());
        Assert.Equal("text/plain", decoded.Properties!.ContentType);
        Assert.Equal("r/1", decoded.Properties.ResponseTopic);
        Assert.Equal([1, 2, 3], decoded.Properties.CorrelationData!);
        Assert.Equal(new UserProperty("k", "v"), Assert.Single(decoded.Properties.UserProperties!));
    }

    [Fact]
    public void ConnAck_v5_length_matches_its_bytes()
    {
        var writer = new ArrayBufferWriter<byte>();
        MqttEncoder.WriteConnAck(writer, true, false, 0, new ConnAckProperties
        {
            MaximumPacketSize = 131072,
            TopicAliasMaximum = 64,
            AssignedClientIdentifier = "abc",
            SessionExpiryInterval = 3600,
            ReasonString = "ok",
        });
        var frame = writer.WrittenSpan.ToArray();

        Assert.Equal(FrameStatus.Complete, MqttFrame.TryRead(new ReadOnlySequence<byte>(frame), 4096, out _, out var headerLength, out var remaining));
        Assert.Equal(frame.Length, headerLength + remaining);
    }

    [Fact]
    public void Subscribe_with_wrong_fixed_header_flags_is_malformed()
    {
        byte[] body = [0x00, 0x01, 0x00, 0x01, (byte)'a', 0x00];

        Assert.False(MqttDecoder.TryDecodeSubscribe(0x00, body, false, out _, out var error));
        Assert.Equal(ReasonCode.MalformedPacket, error.ReasonCode);
    }

    [Fact]
    public void Subscribe_v311_decodes_filters_and_qos()
    {
        byte[] body = [0x00, 0x07, 0x00, 0x03, (byte)'a', (byte)'/', (byte)'#', 0x01, 0x00, 0x01, (byte)'b', 0x02];

        Assert.True(MqttDecoder.TryDecodeSubscribe(0x02, body, false, out var packet, out _));

        Assert.Equal(7, packet.PacketId);
        Assert.Equal(["a/#", "b"], packet.Filters.Select(f => f.Filter));
        Assert.Equal([1, 2], packet.Filters.Select(f => (int)f.MaxQos));
    }

    [Fact]
    public void Qos0_frame_is_cached_and_shared()
    {
        var message = new MqttMessage { Topic = "a", Payload = new byte[] { 1, 2 } };

        Assert.Same(message.GetQos0Frame(false), message.GetQos0Frame(false));
        Assert.Equal(new byte[] { 0x30, 0x05, 0x00, 0x01, (byte)'a', 1, 2 }, message.GetQos0Frame(false));
    }

    [Fact]
    public void Qos0_first_delivery_encodes_in_place_and_later_ones_share_the_cached_frame()
    {
        var message = new MqttMessage { Topic = "a", Payload = new byte[] { 1, 2 } };
        byte[] expected = [0x30, 0x05, 0x00, 0x01, (byte)'a', 1, 2];
        var first = new ArrayBufferWriter<byte>();
        var second = new ArrayBufferWriter<byte>();

        message.WriteQos0(first, v5: false);
        message.WriteQos0(second, v5: false);

        Assert.Equal(expected, first.WrittenSpan.ToArray());
        Assert.Equal(expected, second.WrittenSpan.ToArray());
        Assert.Same(message.GetQos0Frame(false), message.GetQos0Frame(false));
        Assert.Equal(expected, message.GetQos0Frame(false));
    }
}
