using System.Text;
using MQTTnet;
using MQTTnet.Protocol;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Broker;

/// <summary>MQTT features with real clients: QoS 2, wills, shared subscriptions, take-over, WebSockets, lifecycle events.</summary>
[Collection(TrellisServerGroup.Name)]
public sealed class MqttFeatureTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("mqttv311")]
    [InlineData("mqttv5")]
    public async Task Qos2_message_is_delivered_exactly_once(string version)
    {
        var topic = TrellisHost.Unique("q2/");
        using var sub = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(TrellisHost.Unique("s"), version), "-t", topic, "-q", "2", "-v"]);
        await host.WaitSubscribersAsync(topic, peer: sub);

        var pub = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("p"), version), "-t", topic, "-m", "once", "-q", "2"], Timeout, cancellationToken: Ct);

        Assert.True(pub.ExitCode == 0, pub.Output);
        Assert.True(await sub.WaitForLineAsync(l => l == $"{topic} once", Timeout, Ct));

        // A marker sent after it: the session delivers in order, so a duplicate would come before the marker.
        var marker = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("p"), version), "-t", topic, "-m", "marker", "-q", "2"], Timeout, cancellationToken: Ct);
        Assert.True(marker.ExitCode == 0, marker.Output);
        Assert.True(await sub.WaitForLineAsync(l => l == $"{topic} marker", Timeout, Ct));
        Assert.Single(sub.Lines, l => l == $"{topic} once");
    }

    [Fact]
    public async Task Retained_message_reaches_later_subscribers_and_empty_payload_clears_it()
    {
        var topic = TrellisHost.Unique("ret/");
        var kept = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("p")), "-t", topic, "-m", "kept", "-r", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(kept.ExitCode == 0, kept.Output);

        var first = await ExternalTool.RunAsync("mosquitto_sub", [.. host.AdminArgs(TrellisHost.Unique("s")), "-t", topic, "-C", "1", "-W", "5"], Timeout, cancellationToken: Ct);
        Assert.True(first.ExitCode == 0, first.Output);
        var cleared = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("p")), "-t", topic, "-n", "-r", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(cleared.ExitCode == 0, cleared.Output);

        // The retained message arrives with the SUBACK: with the topic's retained message gone, a
        // second subscriber that sees a later (non-retained) message first proves nothing was kept.
        var secondId = TrellisHost.Unique("s");
        using var second = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(secondId), "-t", topic, "-v"]);
        await host.WaitSubscribedAsync(secondId, second, topic);
        var later = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("p")), "-t", topic, "-m", "later", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(later.ExitCode == 0, later.Output);
        Assert.True(await second.WaitForLineAsync(l => l == $"{topic} later", Timeout, Ct), string.Join('|', second.Lines));

        Assert.Equal("kept", first.Stdout.Trim());
        Assert.Equal([$"{topic} later"], second.Lines);
    }

    [Fact]
    public async Task Will_is_published_when_a_client_dies()
    {
        var willTopic = TrellisHost.Unique("will/");
        using var watcher = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(TrellisHost.Unique("w")), "-t", willTopic, "-v"]);
        await host.WaitSubscribersAsync(willTopic, peer: watcher);
        var dyingId = TrellisHost.Unique("d");
        var dying = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(dyingId), "-t", "x/y", "--will-topic", willTopic, "--will-payload", "gone", "--will-qos", "1"]);
        await host.WaitSubscribedAsync(dyingId, dying, "x/y");

        dying.Dispose();

        Assert.True(await watcher.WaitForLineAsync(l => l == $"{willTopic} gone", Timeout, Ct));
    }

    [Fact]
    public async Task Will_is_not_published_after_a_clean_disconnect()
    {
        var willTopic = TrellisHost.Unique("will/");
        using var watcher = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(TrellisHost.Unique("w")), "-t", willTopic, "-t", willTopic + "/marker", "-v"]);
        await host.WaitSubscribersAsync(willTopic, peer: watcher);

        var clean = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("c")), "-t", "x/z", "-m", "1", "--will-topic", willTopic, "--will-payload", "gone"], Timeout, cancellationToken: Ct);
        Assert.True(clean.ExitCode == 0, clean.Output);
        var marker = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("m")), "-t", willTopic + "/marker", "-m", "done", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(marker.ExitCode == 0, marker.Output);

        Assert.True(await watcher.WaitForLineAsync(l => l.EndsWith(" done", StringComparison.Ordinal), Timeout, Ct));
        Assert.DoesNotContain(watcher.Lines, l => l.EndsWith(" gone", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Shared_subscription_splits_messages_between_members()
    {
        var topic = TrellisHost.Unique("shared/");
        using var a = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(TrellisHost.Unique("a"), "mqttv5"), "-t", $"$share/workers/{topic}", "-q", "1"]);
        using var b = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(TrellisHost.Unique("b"), "mqttv5"), "-t", $"$share/workers/{topic}", "-q", "1"]);
        await host.WaitSubscribersAsync($"$share/workers/{topic}", clients: 2);

        for (var i = 0; i < 20; i++)
        {
            await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("p")), "-t", topic, "-m", $"m{i}", "-q", "1"], Timeout, cancellationToken: Ct);
        }

        Assert.True(await Eventually.TrueAsync(() => a.Lines.Count + b.Lines.Count == 20, Timeout, Ct), $"{a.Lines.Count} + {b.Lines.Count} != 20");
        Assert.NotEmpty(a.Lines);
        Assert.NotEmpty(b.Lines);
        Assert.Empty(a.Lines.Intersect(b.Lines));
    }

    [Fact]
    public async Task Second_connection_with_the_same_client_id_takes_over()
    {
        var clientId = TrellisHost.Unique("same");
        using var first = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(clientId, "mqttv5"), "-t", "t/first", "-q", "1"]);
        await host.WaitSubscribedAsync(clientId, first, "t/first");
        using var second = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(clientId, "mqttv5"), "-t", "t/second", "-q", "1"]);

        Assert.True(await Eventually.TrueAsync(() => host.Logs.Contains($"Client {clientId} disconnected: DUPLICATE_CLIENTID"), Timeout, Ct));
        Assert.Single(host.Server.Broker.ConnectedClientIds(), c => c == clientId);
    }

    [Fact]
    public async Task Anonymous_client_is_refused_without_allow_anonymous()
    {
        var result = await ExternalTool.RunAsync("mosquitto_pub", ["-h", "127.0.0.1", "-p", host.MqttPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "-t", "a", "-m", "1"], Timeout, cancellationToken: Ct);
        var wrongPassword = await ExternalTool.RunAsync("mosquitto_pub", ["-h", "127.0.0.1", "-p", host.MqttPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "-u", "nobody", "-P", "x", "-t", "a", "-m", "1"], Timeout, cancellationToken: Ct);

        Assert.Contains("not authorised", result.Output, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("bad user name or password", wrongPassword.Output, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Mqtt_over_websocket_publishes_and_receives()
    {
        var topic = TrellisHost.Unique("ws/");
        var factory = new MqttClientFactory();
        using var client = factory.CreateMqttClient();
        var received = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.ApplicationMessageReceivedAsync += e =>
        {
            received.TrySetResult(Encoding.UTF8.GetString(e.ApplicationMessage.Payload));
            return Task.CompletedTask;
        };
        var user = host.Server.AccessKeys.AdminAccessKeyId;
        await client.ConnectAsync(
            new MqttClientOptionsBuilder()
                .WithWebSocketServer(o => o.WithUri($"ws://127.0.0.1:{host.WsPort}/mqtt"))
                .WithCredentials(user, host.Server.AccessKeys.SecretFor(user))
                .WithClientId(TrellisHost.Unique("ws"))
                .Build(),
            Ct);
        await client.SubscribeAsync(topic, MqttQualityOfServiceLevel.AtLeastOnce, Ct);

        await client.PublishStringAsync(topic, "over-websocket", MqttQualityOfServiceLevel.AtLeastOnce, cancellationToken: Ct);

        Assert.Equal("over-websocket", await received.Task.WaitAsync(Timeout, Ct));
        await client.DisconnectAsync(cancellationToken: Ct);
    }

    [Fact]
    public async Task Lifecycle_events_follow_aws_shape()
    {
        var clientId = TrellisHost.Unique("life");
        using var events = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(TrellisHost.Unique("ev")), "-t", $"$aws/events/presence/+/{clientId}", "-t", $"$aws/events/subscriptions/+/{clientId}", "-v"]);
        await host.WaitSubscribersAsync($"$aws/events/presence/+/{clientId}", peer: events);

        await ExternalTool.RunCheckedAsync("mosquitto_sub", [.. host.AdminArgs(clientId), "-t", "life/x", "-E"], Timeout, cancellationToken: Ct);

        Assert.True(await events.WaitForLineAsync(l => l.StartsWith($"$aws/events/presence/disconnected/{clientId}", StringComparison.Ordinal), Timeout, Ct));
        var connected = System.Text.Json.JsonDocument.Parse(events.Lines.First(l => l.StartsWith($"$aws/events/presence/connected/{clientId}", StringComparison.Ordinal)).Split(' ', 2)[1]).RootElement;
        var subscribed = System.Text.Json.JsonDocument.Parse(events.Lines.First(l => l.StartsWith($"$aws/events/subscriptions/subscribed/{clientId}", StringComparison.Ordinal)).Split(' ', 2)[1]).RootElement;
        var disconnected = System.Text.Json.JsonDocument.Parse(events.Lines.First(l => l.StartsWith($"$aws/events/presence/disconnected/{clientId}", StringComparison.Ordinal)).Split(' ', 2)[1]).RootElement;
        Assert.Equal(clientId, connected.GetProperty("clientId").GetString());
        Assert.Equal("connected", connected.GetProperty("eventType").GetString());
        Assert.Equal(host.Server.AccessKeys.AdminAccessKeyId, connected.GetProperty("principalIdentifier").GetString());
        Assert.Equal("127.0.0.1", connected.GetProperty("ipAddress").GetString());
        Assert.True(connected.GetProperty("timestamp").GetInt64() > 1_700_000_000_000);
        Assert.True(connected.GetProperty("versionNumber").GetInt64() >= 1);
        Assert.Equal("life/x", subscribed.GetProperty("topics")[0].GetString());
        Assert.Equal("CLIENT_INITIATED_DISCONNECT", disconnected.GetProperty("disconnectReason").GetString());
        Assert.True(disconnected.GetProperty("clientInitiatedDisconnect").GetBoolean());
        Assert.Equal(connected.GetProperty("sessionIdentifier").GetString(), disconnected.GetProperty("sessionIdentifier").GetString());
    }
}
