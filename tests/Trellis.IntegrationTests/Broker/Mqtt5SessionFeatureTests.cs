using System.Diagnostics;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Broker;

/// <summary>
/// MQTT 5 session features and QoS 2's edges, byte by byte over raw sockets where the packet
/// matters and with Debian's mosquitto clients elsewhere: session expiry, will delay (and its
/// cancellation by a reconnect), message expiry, topic aliases, QoS 2 duplicate suppression,
/// PUBREL resent after a reconnect, and DUP redelivery of an unacknowledged message.
/// </summary>
[Collection(TrellisServerGroup.Name)]
public sealed class Mqtt5SessionFeatureTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private string User => host.Server.AccessKeys.AdminAccessKeyId;

    private string Secret => host.Server.AccessKeys.SecretFor(User)!;

    [Fact]
    public async Task A_session_ends_at_its_expiry_and_a_longer_one_keeps_what_was_published()
    {
        var topic = TrellisHost.Unique("expiry/");
        var (brief, lasting) = (TrellisHost.Unique("brief"), TrellisHost.Unique("lasting"));
        foreach (var (id, expiry) in new[] { (brief, 1u), (lasting, 60u) })
        {
            using var client = await ConnectAsync(id, cleanStart: true, expiry);
            await SubscribeAsync(client, topic, qos: 1);
        }

        // The broker's own signal that the one-second session is gone: it holds no subscription for it any more.
        Assert.True(await Eventually.TrueAsync(() => host.Server.Broker.SubscriptionsOf(brief).Count == 0, Timeout, Ct), "the 1 s session did not expire");
        Assert.Contains(topic, host.Server.Broker.SubscriptionsOf(lasting));
        await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("p")), "-t", topic, "-m", "kept", "-q", "1"], Timeout, cancellationToken: Ct);

        using (var expired = await ConnectAsync(brief, cleanStart: false, 60, expectPresent: false))
        {
        }

        using var resumed = await ConnectAsync(lasting, cleanStart: false, 60, expectPresent: true);
        var message = RawMqtt.ParsePublish(await resumed.ReadPacketAsync(Timeout, Ct), v5: true);
        Assert.Equal(("kept", topic), (message.Payload, message.Topic));
    }

    [Fact]
    public async Task A_will_waits_its_delay_and_a_reconnect_within_it_cancels_it()
    {
        var willTopic = TrellisHost.Unique("willdelay/");
        using var watcher = await WatchAsync(willTopic + "/#");

        // Dies without DISCONNECT: the will comes, but only after its 2 s delay.
        var dying = await ConnectAsync(TrellisHost.Unique("dying"), cleanStart: true, 30, will: (willTopic + "/late", "gone", 2));
        var died = Stopwatch.StartNew();
        dying.Dispose();
        Assert.True(await watcher.WaitForLineAsync(l => l == $"{willTopic}/late gone", Timeout, Ct), string.Join('|', watcher.Lines));
        Assert.True(died.Elapsed >= TimeSpan.FromSeconds(1.5), $"the will came after {died.Elapsed.TotalSeconds:F1} s, before its 2 s delay");

        // Dies and comes back within the delay: no will at all (checked past the delay, with a marker after it).
        var back = TrellisHost.Unique("back");
        // A 5 s delay: a loaded machine may take more than 2 s between the drop and the reconnect.
        (await ConnectAsync(back, cleanStart: true, 30, will: (willTopic + "/cancelled", "gone", 5))).Dispose();
        using var returned = await ConnectAsync(back, cleanStart: false, 30, expectPresent: true);
        await Task.Delay(TimeSpan.FromSeconds(6), Ct); // past the will's own 5 s delay: the time is the feature under test
        await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("p")), "-t", willTopic + "/marker", "-m", "m", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(await watcher.WaitForLineAsync(l => l == $"{willTopic}/marker m", Timeout, Ct));
        Assert.DoesNotContain(watcher.Lines, l => l.StartsWith($"{willTopic}/cancelled", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_takeover_that_carries_the_session_on_sends_no_will_and_one_that_starts_clean_sends_it_at_once()
    {
        var willTopic = TrellisHost.Unique("takeoverwill/");
        using var watcher = await WatchAsync(willTopic + "/#");

        // The old connection is still open when the new one arrives: the broker takes it over
        // (DISCONNECT 0x8E) instead of seeing it drop. The session goes on, so the will (2 s delay) never comes.
        var carried = TrellisHost.Unique("carried");
        using (var old = await ConnectAsync(carried, cleanStart: true, 30, will: (willTopic + "/carried", "gone", 2)))
        {
            using var newer = await ConnectAsync(carried, cleanStart: false, 30, expectPresent: true);
            var disconnect = await old.ReadPacketAsync(Timeout, Ct);
            Assert.Equal((0xE0, 0x8E), (disconnect[0], disconnect[2]));
            await Task.Delay(TimeSpan.FromSeconds(3), Ct); // past the will's 2 s delay: the time is the feature under test
        }

        // A takeover that starts clean ends the old session: its will goes at once, without its 30 s delay.
        var restarted = TrellisHost.Unique("restarted");
        using (var old = await ConnectAsync(restarted, cleanStart: true, 60, will: (willTopic + "/restarted", "gone", 30)))
        {
            using var newer = await ConnectAsync(restarted, cleanStart: true, 60, expectPresent: false);
            Assert.True(await watcher.WaitForLineAsync(l => l == $"{willTopic}/restarted gone", Timeout, Ct), string.Join('|', watcher.Lines));
        }

        await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("p")), "-t", willTopic + "/marker", "-m", "m", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(await watcher.WaitForLineAsync(l => l == $"{willTopic}/marker m", Timeout, Ct));
        Assert.DoesNotContain(watcher.Lines, l => l.StartsWith($"{willTopic}/carried", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_message_past_its_expiry_is_not_delivered_to_a_returning_session()
    {
        var topic = TrellisHost.Unique("msgexp/");
        var id = TrellisHost.Unique("away");
        using (var client = await ConnectAsync(id, cleanStart: true, 60))
        {
            await SubscribeAsync(client, topic, qos: 1);
        }

        await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("p"), "mqttv5"), "-t", topic, "-m", "short-lived", "-q", "1", "-D", "publish", "message-expiry-interval", "1"], Timeout, cancellationToken: Ct);
        await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("p"), "mqttv5"), "-t", topic, "-m", "lasting", "-q", "1"], Timeout, cancellationToken: Ct);
        await Task.Delay(TimeSpan.FromSeconds(2), Ct); // past the first message's 1 s expiry: the time is the feature under test

        using var back = await ConnectAsync(id, cleanStart: false, 60, expectPresent: true);
        var first = RawMqtt.ParsePublish(await back.ReadPacketAsync(Timeout, Ct), v5: true);
        Assert.Equal("lasting", first.Payload);
    }

    [Fact]
    public async Task A_topic_alias_set_by_a_publisher_is_used_for_later_publishes_and_one_past_the_maximum_is_refused()
    {
        var topic = TrellisHost.Unique("alias/");
        var subscriberId = TrellisHost.Unique("s");
        using var subscriber = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(subscriberId), "-t", topic, "-v"]);
        await host.WaitSubscribedAsync(subscriberId, subscriber);

        using var publisher = await ConnectAsync(TrellisHost.Unique("p"), cleanStart: true, 0);
        await publisher.SendAsync(RawMqtt.PublishV5(topic, "with-topic", 1, 1, topicAlias: 1), Ct);
        Assert.Equal(0x40, (await publisher.ReadPacketAsync(Timeout, Ct))[0]);
        await publisher.SendAsync(RawMqtt.PublishV5(string.Empty, "by-alias", 1, 2, topicAlias: 1), Ct);
        Assert.Equal(0x40, (await publisher.ReadPacketAsync(Timeout, Ct))[0]);
        Assert.True(await subscriber.WaitForLineAsync(l => l == $"{topic} by-alias", Timeout, Ct), string.Join('|', subscriber.Lines));
        Assert.Contains($"{topic} with-topic", subscriber.Lines);

        // The CONNACK announced 64 aliases: alias 65 is a protocol error, answered with DISCONNECT 0x94.
        await publisher.SendAsync(RawMqtt.PublishV5(topic, "too-far", 1, 3, topicAlias: 65), Ct);
        var disconnect = await publisher.ReadPacketAsync(Timeout, Ct);
        Assert.Equal(0xE0, disconnect[0]);
        Assert.Equal(0x94, disconnect[2]);
    }

    [Fact]
    public async Task A_qos2_message_sent_twice_is_delivered_once_and_its_pubrel_is_answered_after_a_reconnect()
    {
        var topic = TrellisHost.Unique("q2dup/");
        var subscriberId = TrellisHost.Unique("s");
        using var subscriber = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(subscriberId), "-t", topic, "-q", "2", "-v"]);
        await host.WaitSubscribedAsync(subscriberId, subscriber);

        var publisherId = TrellisHost.Unique("p");
        using (var publisher = await ConnectAsync(publisherId, cleanStart: true, 60))
        {
            await publisher.SendAsync(RawMqtt.PublishV5(topic, "exactly-once", 2, 7), Ct);
            Assert.Equal(0x50, (await publisher.ReadPacketAsync(Timeout, Ct))[0]); // PUBREC
            await publisher.SendAsync(RawMqtt.PublishV5(topic, "exactly-once", 2, 7, dup: true), Ct);
            Assert.Equal(0x50, (await publisher.ReadPacketAsync(Timeout, Ct))[0]); // PUBREC again, not a second delivery
        }

        // The connection dropped before PUBREL: the session remembers packet 7, and the PUBREL sent after the reconnect completes it.
        using (var again = await ConnectAsync(publisherId, cleanStart: false, 60, expectPresent: true))
        {
            await again.SendAsync(RawMqtt.Ack(0x62, 7), Ct);
            var pubcomp = await again.ReadPacketAsync(Timeout, Ct);
            Assert.Equal(0x70, pubcomp[0]);
            var reason = pubcomp.Length > 4 ? pubcomp[4] : 0x00; // no reason byte means Success
            Assert.True(reason == 0x00, $"PUBCOMP reason {reason:X2}: the session forgot packet 7");
        }

        await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("m")), "-t", topic, "-m", "marker", "-q", "2"], Timeout, cancellationToken: Ct);
        Assert.True(await subscriber.WaitForLineAsync(l => l == $"{topic} marker", Timeout, Ct), string.Join('|', subscriber.Lines));
        Assert.Single(subscriber.Lines, l => l == $"{topic} exactly-once");
    }

    [Fact]
    public async Task An_unacknowledged_message_is_sent_again_with_dup_after_a_reconnect()
    {
        var topic = TrellisHost.Unique("redeliver/");
        var id = TrellisHost.Unique("slow");
        using (var first = await ConnectAsync(id, cleanStart: true, 60))
        {
            await SubscribeAsync(first, topic, qos: 1);
            await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("p")), "-t", topic, "-m", "unacked", "-q", "1"], Timeout, cancellationToken: Ct);
            var delivered = RawMqtt.ParsePublish(await first.ReadPacketAsync(Timeout, Ct), v5: true);
            Assert.Equal(("unacked", false), (delivered.Payload, delivered.Dup));
        }

        using var second = await ConnectAsync(id, cleanStart: false, 60, expectPresent: true);
        var again = RawMqtt.ParsePublish(await second.ReadPacketAsync(Timeout, Ct), v5: true);
        Assert.Equal(("unacked", true, (byte)1), (again.Payload, again.Dup, again.Qos));
        await second.SendAsync(RawMqtt.Ack(0x40, again.PacketId), Ct);
    }

    private async Task<RawMqtt> ConnectAsync(string clientId, bool cleanStart, uint sessionExpiry, bool? expectPresent = null, (string Topic, string Payload, uint Delay)? will = null)
    {
        var client = await RawMqtt.ConnectAsync(host.MqttPort, Ct);
        await client.SendAsync(RawMqtt.Connect(clientId, User, Secret, level: 5, cleanStart: cleanStart, sessionExpiry: sessionExpiry, willTopic: will?.Topic, willPayload: will?.Payload, willDelay: will?.Delay ?? 0), Ct);
        var connack = await client.ReadPacketAsync(Timeout, Ct);
        Assert.Equal(0x20, connack[0]);
        Assert.Equal(0x00, connack[3]);
        if (expectPresent is { } present)
        {
            Assert.True((connack[2] & 1) == (present ? 1 : 0), $"session present {connack[2] & 1}, expected {(present ? 1 : 0)}");
        }

        return client;
    }

    /// <summary>A mosquitto_sub on <paramref name="filter"/> (printing topic and payload), returned once the broker holds its subscription.</summary>
    private async Task<ExternalTool.Background> WatchAsync(string filter)
    {
        var watcherId = TrellisHost.Unique("w");
        var watcher = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(watcherId), "-t", filter, "-v"]);
        try
        {
            await host.WaitSubscribedAsync(watcherId, watcher);
        }
        catch
        {
            watcher.Dispose();
            throw;
        }

        return watcher;
    }

    private static async Task SubscribeAsync(RawMqtt client, string topic, byte qos)
    {
        await client.SendAsync(RawMqtt.Subscribe(1, topic, qos, v5: true), Ct);
        var suback = await client.ReadPacketAsync(Timeout, Ct);
        Assert.Equal(0x90, suback[0]);
        Assert.Equal(qos, suback[^1]);
    }
}
