using System.Text;
using MQTTnet;
using MQTTnet.Protocol;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Broker;

/// <summary>MQTT 5 rules a conforming broker must keep: subscription identifiers, Receive Maximum, clean start.</summary>
public sealed class MqttConformanceTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private readonly TrellisHost _host = new();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public ValueTask InitializeAsync() => _host.InitializeAsync();

    public ValueTask DisposeAsync() => _host.DisposeAsync();

    [Fact]
    public async Task A_message_matching_two_subscriptions_is_sent_once_with_both_identifiers_and_the_higher_qos()
    {
        var prefix = TrellisHost.Unique("subid/");
        var user = _host.Server.AccessKeys.AdminAccessKeyId;
        using var client = new MqttClientFactory().CreateMqttClient();
        var received = new List<MqttApplicationMessage>();
        client.ApplicationMessageReceivedAsync += e =>
        {
            lock (received)
            {
                received.Add(e.ApplicationMessage);
            }

            return Task.CompletedTask;
        };
        await client.ConnectAsync(
            new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", _host.MqttPort).WithCredentials(user, _host.Server.AccessKeys.SecretFor(user))
                .WithClientId(TrellisHost.Unique("subid")).WithProtocolVersion(MQTTnet.Formatter.MqttProtocolVersion.V500).Build(),
            Ct);
        await client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder().WithTopicFilter($"{prefix}/+", MqttQualityOfServiceLevel.AtMostOnce).WithSubscriptionIdentifier(11).Build(), Ct);
        await client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder().WithTopicFilter($"{prefix}/#", MqttQualityOfServiceLevel.AtLeastOnce).WithSubscriptionIdentifier(22).Build(), Ct);

        var publish = await ExternalTool.RunAsync("mosquitto_pub", [.. _host.AdminArgs(TrellisHost.Unique("p"), "mqttv5"), "-t", $"{prefix}/x", "-m", "both", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(publish.ExitCode == 0, publish.Output);
        var marker = await ExternalTool.RunAsync("mosquitto_pub", [.. _host.AdminArgs(TrellisHost.Unique("p"), "mqttv5"), "-t", $"{prefix}/end", "-m", "end", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(marker.ExitCode == 0, marker.Output);

        // The second message says the first has had all the time it needs to arrive twice, if it were to.
        Assert.True(await Eventually.TrueAsync(() => { lock (received) { return received.Any(m => m.Topic.EndsWith("/end", StringComparison.Ordinal)); } }, Timeout, Ct));
        var both = received.Where(m => m.Topic == $"{prefix}/x").ToList();
        var message = Assert.Single(both);
        Assert.Equal("both", Encoding.UTF8.GetString(message.Payload));
        Assert.Equal([11u, 22u], message.SubscriptionIdentifiers.Order());
        Assert.Equal(MqttQualityOfServiceLevel.AtLeastOnce, message.QualityOfServiceLevel);
    }

    [Fact]
    public async Task Connack_announces_the_receive_maximum_and_a_client_that_exceeds_it_is_disconnected_with_0x93()
    {
        var user = _host.Server.AccessKeys.AdminAccessKeyId;
        using var client = await RawMqtt.ConnectAsync(_host.MqttPort, Ct);
        await client.SendAsync(RawMqtt.Connect(TrellisHost.Unique("rm"), user, _host.Server.AccessKeys.SecretFor(user), level: 5), Ct);
        var connack = await client.ReadPacketAsync(Timeout, Ct);
        var announced = ReceiveMaximumOf(connack);
        Assert.Equal(_host.Server.Broker.Options.ReceiveMaximum, announced);

        // QoS 2 publishes whose PUBREL never comes stay unacknowledged: one more than allowed is a protocol error.
        var topic = TrellisHost.Unique("rm/");
        var burst = Enumerable.Range(1, announced + 1).SelectMany(i => RawMqtt.Publish(topic, $"m{i}", 2, (ushort)i, v5: true)).ToArray();
        await client.SendAsync(burst, Ct);
        var (bytes, closed) = await client.ReadUntilClosedAsync(Timeout, Ct);

        Assert.True(closed, "the broker kept the connection open");
        var packets = Split(bytes);
        Assert.Equal(announced, packets.Count(p => p[0] == 0x50)); // a PUBREC for each allowed publish
        var disconnect = packets[^1];
        Assert.Equal(0xE0, disconnect[0]);
        Assert.Equal(0x93, disconnect[2]); // Receive Maximum exceeded
    }

    [Fact]
    public async Task A_client_still_sending_after_exceeding_receive_maximum_reads_the_disconnect()
    {
        // Eclipse Paho's test_flow_control2: the client answers each PUBREC with a PUBREL while it
        // reads, so it is still writing when the broker closes. The broker must let it read the
        // DISCONNECT (FIN, then drain) rather than reset the connection under it.
        using var client = await RawMqtt.ConnectAsync(_host.MqttPort, Ct);
        var user = _host.Server.AccessKeys.AdminAccessKeyId;
        await client.SendAsync(RawMqtt.Connect(TrellisHost.Unique("rm2"), user, _host.Server.AccessKeys.SecretFor(user), level: 5), Ct);
        var announced = ReceiveMaximumOf(await client.ReadPacketAsync(Timeout, Ct));
        var topic = TrellisHost.Unique("rm2/");
        await client.SendAsync(Enumerable.Range(1, announced + 1).SelectMany(i => RawMqtt.Publish(topic, $"m{i}", 2, (ushort)i, v5: true)).ToArray(), Ct);

        var pubrecs = 0;
        while (true)
        {
            byte[] packet;
            try
            {
                packet = await client.ReadPacketAsync(Timeout, Ct);
            }
            catch (IOException e)
            {
                Assert.Fail($"the connection was reset after {pubrecs} PUBRECs, before the DISCONNECT was read: {e.Message}");
                return;
            }

            if (packet[0] == 0x50)
            {
                pubrecs++;
                var id = (ushort)((packet[2] << 8) | packet[3]);
                try
                {
                    await client.SendAsync(RawMqtt.Ack(0x62, id), Ct);
                }
                catch (IOException e)
                {
                    Assert.Fail($"writing PUBREL {id} failed: the broker reset the connection instead of closing it gracefully: {e.Message}");
                }

                continue;
            }

            if (packet[0] == 0x70)
            {
                continue; // PUBCOMP for a PUBREL that arrived before the close
            }

            Assert.Equal(0xE0, packet[0]);
            Assert.Equal(0x93, packet[2]);
            break;
        }
    }

    [Fact]
    public async Task A_clean_start_keeps_nothing_of_the_old_session()
    {
        // The sequence of Eclipse Paho's interoperability test_unsubscribe after test_redelivery_on_reconnect.
        var prefix = TrellisHost.Unique("clean");
        var clientId = TrellisHost.Unique("b");
        var user = _host.Server.AccessKeys.AdminAccessKeyId;
        var secret = _host.Server.AccessKeys.SecretFor(user);

        // A persistent session on PREFIX/TopicA/# with QoS 1 and 2 deliveries left unacknowledged, and
        // its connection still open when the same client id connects again with a clean start.
        using var old = await RawMqtt.ConnectAsync(_host.MqttPort, Ct);
        await old.SendAsync(RawMqtt.Connect(clientId, user, secret, cleanStart: false), Ct);
        Assert.Equal([0x20, 0x02, 0x00, 0x00], await old.ReadPacketAsync(Timeout, Ct));
        await old.SendAsync(RawMqtt.Subscribe(1, $"{prefix}/TopicA/#", 2), Ct);
        Assert.Equal(0x90, (await old.ReadPacketAsync(Timeout, Ct))[0]);
        await old.SendAsync([.. RawMqtt.Publish($"{prefix}/TopicA/B", "q1", 1, 2), .. RawMqtt.Publish($"{prefix}/TopicA/C", "q2", 2, 3)], Ct);
        var delivered = 0;
        while (delivered < 2)
        {
            // Its own two messages come back (besides the PUBACK and PUBREC for sending them); it acknowledges neither.
            delivered += (await old.ReadPacketAsync(Timeout, Ct))[0] >> 4 == 3 ? 1 : 0;
        }

        using var fresh = await RawMqtt.ConnectAsync(_host.MqttPort, Ct);
        await fresh.SendAsync(RawMqtt.Connect(clientId, user, secret, cleanStart: true), Ct);
        Assert.Equal([0x20, 0x02, 0x00, 0x00], await fresh.ReadPacketAsync(Timeout, Ct));
        var (_, oldClosed) = await old.ReadUntilClosedAsync(Timeout, Ct);
        Assert.True(oldClosed, "the old connection was not taken over");
        await fresh.SendAsync([.. RawMqtt.Subscribe(4, $"{prefix}/TopicA", 2), .. RawMqtt.Subscribe(5, $"{prefix}/TopicA/B", 2), .. RawMqtt.Subscribe(6, $"{prefix}/Topic/C", 2)], Ct);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(0x90, (await fresh.ReadPacketAsync(Timeout, Ct))[0]);
        }

        await fresh.SendAsync(RawMqtt.Frame(0xA2, [0x00, 0x07, .. Utf8String($"{prefix}/TopicA")]), Ct);
        Assert.Equal(0xB0, (await fresh.ReadPacketAsync(Timeout, Ct))[0]);

        foreach (var topic in new[] { "TopicA", "TopicA/B", "Topic/C" })
        {
            var publish = await ExternalTool.RunAsync("mosquitto_pub", [.. _host.AdminArgs(TrellisHost.Unique("a")), "-t", $"{prefix}/{topic}", "-m", topic, "-q", "1"], Timeout, cancellationToken: Ct);
            Assert.True(publish.ExitCode == 0, publish.Output);
        }

        // Exactly the two subscribed topics, in order: nothing from the old session's TopicA/#.
        var first = RawMqtt.ParsePublish(await fresh.ReadPacketAsync(Timeout, Ct), v5: false);
        var second = RawMqtt.ParsePublish(await fresh.ReadPacketAsync(Timeout, Ct), v5: false);
        Assert.Equal(("TopicA/B", "Topic/C"), (first.Payload, second.Payload));
        await fresh.SendAsync([.. RawMqtt.Ack(0x40, first.PacketId), .. RawMqtt.Ack(0x40, second.PacketId), 0xE0, 0x00], Ct);
        var (rest, _) = await fresh.ReadUntilClosedAsync(Timeout, Ct);
        Assert.Empty(rest);
    }

    private static byte[] Utf8String(string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        return [(byte)(bytes.Length >> 8), (byte)bytes.Length, .. bytes];
    }

    /// <summary>The Receive Maximum property of an MQTT 5 CONNACK (65 535 when absent, §3.2.2.3.3).</summary>
    private static int ReceiveMaximumOf(byte[] connack)
    {
        Assert.Equal(0x20, connack[0]);
        var i = 1;
        while ((connack[i] & 0x80) != 0)
        {
            i++;
        }

        i += 3; // end of remaining length, flags, reason code
        var end = i + 1 + connack[i]; // property length (< 128 here)
        for (i++; i < end;)
        {
            var id = connack[i++];
            switch (id)
            {
                case 0x21:
                    return (connack[i] << 8) | connack[i + 1];
                case 0x11 or 0x27:
                    i += 4;
                    break;
                case 0x22 or 0x13:
                    i += 2;
                    break;
                case 0x12 or 0x1F:
                    i += 2 + ((connack[i] << 8) | connack[i + 1]);
                    break;
                default:
                    i += 1; // the one-byte "available" flags
                    break;
            }
        }

        return 65_535;
    }

    /// <summary>Splits a byte stream into MQTT packets.</summary>
    private static List<byte[]> Split(byte[] bytes)
    {
        var packets = new List<byte[]>();
        var i = 0;
        while (i < bytes.Length)
        {
            var start = i++;
            var length = 0;
            var multiplier = 1;
            byte b;
            do
            {
                b = bytes[i++];
                length += (b & 0x7F) * multiplier;
                multiplier *= 128;
            }
            while ((b & 0x80) != 0);
            i += length;
            packets.Add(bytes[start..i]);
        }

        return packets;
    }
}
