using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary>
/// External rule actions through the durable outbox, against real peers: Debian's nats-server
/// (JetStream on disk) stopped and restarted mid-test, and an HTTP receiver that fails for a while.
/// </summary>
[Collection(TrellisServerGroup.Name)]
public sealed class RuleOutboxTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task The_nats_action_delivers_everything_in_order_across_a_nats_server_restart()
    {
        var port = HttpReceiver.FreePort();
        var store = Directory.CreateDirectory(Path.Combine(host.DataDirectory, TrellisHost.Unique("nats"))).FullName;
        var url = $"nats://127.0.0.1:{port}";
        var nats = await StartNatsAsync(port, store);
        try
        {
            await using (var client = new NatsConnection(new NatsOpts { Url = url }))
            {
                await new NatsJSContext(client).CreateStreamAsync(new StreamConfig("TELE", ["tele.>"]), Ct);
            }

            var prefix = TrellisHost.Unique("seq");
            var rule = TrellisHost.Unique("nats_");
            // "nats" is a Trellis action (boto3 validates against AWS's list), so this one is a signed request of its own.
            var payload = new JsonObject
            {
                ["sql"] = $"SELECT n, topic(2) AS device FROM '{prefix}/+'",
                ["actions"] = new JsonArray(new JsonObject { ["nats"] = new JsonObject { ["url"] = url, ["subject"] = "tele.${topic(2)}", ["jetStream"] = true } }),
            };
            var created = await host.SignedRequestAsync("POST", $"/rules/{rule}", payload.ToJsonString(), Ct);
            Assert.True(created["status"]!.GetValue<int>() == 200, created.ToJsonString());

            await PublishAsync(prefix, 0, 10);
            Assert.True(await WaitForStreamAsync(url, 10), "the first ten are not in the stream");

            // nats-server goes away: the next twenty wait in the outbox (on disk) and the broker keeps acknowledging.
            nats.Dispose();
            await PublishAsync(prefix, 10, 20);
            var outbox = (Trellis.Rules.Outbox)host.Server.Services.GetService(typeof(Trellis.Rules.Outbox))!;
            Assert.True(await Eventually.TrueAsync(() => outbox.Waiting($"nats|{url}|js") == 20, Timeout, Ct), $"waiting: {outbox.Waiting($"nats|{url}|js")}");

            // Back: everything arrives, once, in order.
            nats = await StartNatsAsync(port, store);
            Assert.True(await Eventually.TrueAsync(() => outbox.Waiting($"nats|{url}|js") == 0, TimeSpan.FromSeconds(60), Ct), "the outbox did not drain");
            await using var reader = new NatsConnection(new NatsOpts { Url = url });
            var consumer = await new NatsJSContext(reader).CreateOrderedConsumerAsync("TELE", cancellationToken: Ct);
            var seen = new List<long>();
            using var read = CancellationTokenSource.CreateLinkedTokenSource(Ct);
            read.CancelAfter(Timeout);
            await foreach (var message in consumer.ConsumeAsync<byte[]>(cancellationToken: read.Token))
            {
                seen.Add(JsonNode.Parse(message.Data!)!["n"]!.GetValue<long>());
                if (seen.Count == 30)
                {
                    break;
                }
            }

            Assert.Equal(Enumerable.Range(0, 30).Select(i => (long)i), seen);
            Assert.Equal(30, await StreamCountAsync(url));
        }
        finally
        {
            nats.Dispose();
        }
    }

    [Fact]
    public async Task The_http_action_retries_a_failing_receiver_and_delivers_in_order_with_headers()
    {
        using var receiver = new HttpReceiver(failures: 3);
        var prefix = TrellisHost.Unique("web");
        var rule = TrellisHost.Unique("http_");
        var created = await host.IotCallsAsync([("create_topic_rule", new
        {
            ruleName = rule,
            topicRulePayload = new
            {
                sql = $"SELECT n FROM '{prefix}/+'",
                actions = new object[] { new { http = new { url = receiver.Url + "${topic(2)}", confirmationUrl = receiver.Url, headers = new[] { new { key = "x-api-key", value = "k-1" } } } } },
            },
        })], Ct);
        Assert.True(created[0]!["status"]!.GetValue<int>() == 200, created[0]!.ToJsonString());

        // The rule's new confirmation URL got a destination and a confirmation message; the receiver confirmed it.
        Assert.True(await Eventually.TrueAsync(() => receiver.EnableAnswers.Contains(200), Timeout, Ct), "the destination was not confirmed");

        await PublishAsync(prefix, 0, 5);
        Assert.True(await Eventually.TrueAsync(() => receiver.Received.Count == 5, TimeSpan.FromSeconds(30), Ct), $"received {receiver.Received.Count}, refused {receiver.Refused}");
        Assert.Equal(3, receiver.Refused);
        Assert.Equal(Enumerable.Range(0, 5).Select(i => $"{{\"n\":{i}}}"), receiver.Received.Select(r => r.Body));
        Assert.All(receiver.Received, r => Assert.Equal("k-1", r.ApiKey));
        Assert.All(receiver.Received, r => Assert.Equal("/hook/dev", r.Path));
    }

    [Fact]
    public async Task The_kafka_action_keeps_messages_in_order_in_the_outbox_while_the_broker_is_unreachable()
    {
        // A closed port stands for a Kafka broker that is down: the messages wait in the outbox, in order, and the failure is logged.
        var bootstrap = $"127.0.0.1:{HttpReceiver.FreePort()}";
        var (rule, _, outbox, target) = await KafkaRuleAsync(bootstrap);
        Assert.True(await Eventually.TrueAsync(() => outbox.Waiting(target) == 3, Timeout, Ct), $"waiting: {outbox.Waiting(target)}");
        Assert.True(await Eventually.TrueAsync(() => host.Logs.Contains("is not taking messages"), TimeSpan.FromSeconds(30), Ct), "the failed delivery was not logged");
        Assert.Equal(200, (await host.IotCallsAsync([("delete_topic_rule", new { ruleName = rule })], Ct))[0]!["status"]!.GetValue<int>());
    }

    [Fact]
    public async Task The_kafka_action_delivers_to_a_real_broker()
    {
        // Debian has no Kafka package and the machine no other source: this runs where TRELLIS_TEST_KAFKA names a broker.
        var bootstrap = Environment.GetEnvironmentVariable("TRELLIS_TEST_KAFKA");
        Assert.SkipWhen(string.IsNullOrEmpty(bootstrap), "TRELLIS_TEST_KAFKA is not set: no Kafka broker to deliver to (set it to host:port of a running broker)");
        var (_, topic, outbox, target) = await KafkaRuleAsync(bootstrap!);
        Assert.True(await Eventually.TrueAsync(() => outbox.Waiting(target) == 0, TimeSpan.FromSeconds(60), Ct), "not delivered to Kafka");
        using var consumer = new Confluent.Kafka.ConsumerBuilder<string, string>(new Confluent.Kafka.ConsumerConfig
        {
            BootstrapServers = bootstrap,
            GroupId = TrellisHost.Unique("g"),
            AutoOffsetReset = Confluent.Kafka.AutoOffsetReset.Earliest,
        }).Build();
        consumer.Subscribe(topic);
        var values = new List<string>();
        var deadline = DateTime.UtcNow + Timeout;
        while (values.Count < 3 && DateTime.UtcNow < deadline)
        {
            if (consumer.Consume(TimeSpan.FromSeconds(1)) is { } result)
            {
                Assert.Equal("dev", result.Message.Key);
                values.Add(result.Message.Value);
            }
        }

        Assert.Equal(["{\"n\":0}", "{\"n\":1}", "{\"n\":2}"], values);
    }

    /// <summary>Creates a Kafka rule for <paramref name="bootstrap"/> (and checks a rule without bootstrap.servers is refused), then publishes three messages.</summary>
    private async Task<(string Rule, string Topic, Trellis.Rules.Outbox Outbox, string Target)> KafkaRuleAsync(string bootstrap)
    {
        var prefix = TrellisHost.Unique("kafka");
        var rule = TrellisHost.Unique("kafka_");
        var topic = TrellisHost.Unique("trellis-test-");
        var created = await host.IotCallsAsync([("create_topic_rule", new
        {
            ruleName = rule,
            topicRulePayload = new
            {
                sql = $"SELECT n FROM '{prefix}/+'",
                actions = new object[]
                {
                    new
                    {
                        kafka = new
                        {
                            destinationArn = "arn:aws:iot:us-east-1:000000000000:ruledestination/vpc/x",
                            topic,
                            key = "${topic(2)}",
                            clientProperties = new Dictionary<string, string> { ["bootstrap.servers"] = bootstrap },
                            headers = new[] { new { key = "source", value = "trellis" } },
                        },
                    },
                },
            },
        })], Ct);
        Assert.True(created[0]!["status"]!.GetValue<int>() == 200, created[0]!.ToJsonString());
        var refused = await host.IotCallsAsync([("create_topic_rule", new
        {
            ruleName = rule + "_bad",
            topicRulePayload = new { sql = $"SELECT n FROM '{prefix}/+'", actions = new object[] { new { kafka = new { destinationArn = "d", topic, clientProperties = new Dictionary<string, string>() } } } },
        })], Ct);
        Assert.Contains("bootstrap.servers", refused[0]!["message"]!.GetValue<string>(), StringComparison.Ordinal);

        await PublishAsync(prefix, 0, 3);
        var outbox = (Trellis.Rules.Outbox)host.Server.Services.GetService(typeof(Trellis.Rules.Outbox))!;
        return (rule, topic, outbox, "kafka|" + new JsonObject { ["bootstrap.servers"] = bootstrap }.ToJsonString());
    }

    private async Task PublishAsync(string prefix, int from, int count)
    {
        var args = host.AdminArgs(TrellisHost.Unique("pub"));
        for (var n = from; n < from + count; n++)
        {
            var pub = await ExternalTool.RunAsync("mosquitto_pub", [.. args, "-t", $"{prefix}/dev", "-m", $"{{\"n\":{n}}}", "-q", "1"], Timeout, cancellationToken: Ct);
            Assert.True(pub.ExitCode == 0, pub.Output);
        }
    }

    private static async Task<bool> WaitForStreamAsync(string url, long count)
    {
        for (var attempt = 0; attempt < 100; attempt++)
        {
            if (await StreamCountAsync(url) == count)
            {
                return true;
            }

            await Task.Delay(200, Ct);
        }

        return false;
    }

    private static async Task<long> StreamCountAsync(string url)
    {
        try
        {
            await using var client = new NatsConnection(new NatsOpts { Url = url });
            var stream = await new NatsJSContext(client).GetStreamAsync("TELE");
            return stream.Info.State.Messages;
        }
        catch (NatsException)
        {
            return -1;
        }
    }

    private static async Task<ExternalTool.Background> StartNatsAsync(int port, string store)
    {
        var server = ExternalTool.StartBackground("nats-server", ["-a", "127.0.0.1", "-p", port.ToString(CultureInfo.InvariantCulture), "-js", "-sd", store]);
        Assert.True(await Eventually.TrueAsync(() =>
        {
            try
            {
                using var socket = new TcpClient();
                socket.Connect(IPAddress.Loopback, port);
                return true;
            }
            catch (SocketException)
            {
                return false;
            }
        }, Timeout, Ct), "nats-server did not start: " + server.Stderr);
        return server;
    }
}
