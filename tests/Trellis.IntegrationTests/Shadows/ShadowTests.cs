using System.Buffers;
using System.Text.Json.Nodes;
using MQTTnet;
using MQTTnet.Protocol;
using Trellis.Device;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Shadows;

/// <summary>Device shadows over MQTT (mosquitto clients), HTTP (boto3 iot-data) and the device SDK.</summary>
[Collection(TrellisServerGroup.Name)]
public sealed class ShadowTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    /// <summary>AWS's per-thing shadow policy: a device may use only its own thing's shadow topics.</summary>
    private const string ShadowPolicy = """
        {"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
          {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"arn:aws:iot:*:*:topic/$aws/things/${iot:Connection.Thing.ThingName}/shadow/*"},
          {"Effect":"Allow","Action":"iot:Subscribe","Resource":"arn:aws:iot:*:*:topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/shadow/*"}]}
        """;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Desired_set_while_the_device_is_offline_reaches_it_as_exactly_the_delta()
    {
        var device = await host.ProvisionAsync(TrellisHost.Unique("lamp"), TrellisHost.Unique("shadow"), ShadowPolicy, Ct);
        var prefix = $"$aws/things/{device.ThingName}/shadow";

        // The device reports its state, subscribes to deltas with a persistent session, and goes offline.
        var report = await RequestAsync(device, $"{prefix}/update", $"{prefix}/update/accepted", """{"state":{"reported":{"color":"blue","level":3}},"clientToken":"r1"}""");
        Assert.Equal("r1", report["clientToken"]!.GetValue<string>());
        var subscribe = await ExternalTool.RunAsync("mosquitto_sub", [.. host.TlsArgs(device), "-c", "-q", "1", "-t", $"{prefix}/update/delta", "-E"], Timeout, cancellationToken: Ct);
        Assert.True(subscribe.ExitCode == 0, subscribe.Output);

        // An application sets desired over HTTP: level matches reported, color does not.
        var update = await IotDataAsync(new { op = "update", thing = device.ThingName, payload = new { state = new { desired = new { color = "red", level = 3 } } } });
        Assert.Equal(200, update[0]!["status"]!.GetValue<int>());
        Assert.Equal(2, update[0]!["body"]!["version"]!.GetValue<int>());

        // Back online: the queued delta holds exactly the difference.
        var resumed = await ExternalTool.RunAsync("mosquitto_sub", [.. host.TlsArgs(device), "-c", "-q", "1", "-t", $"{prefix}/update/delta", "-C", "1", "-W", "10"], Timeout, cancellationToken: Ct);
        Assert.True(resumed.ExitCode == 0, resumed.Output);
        var delta = JsonNode.Parse(resumed.Stdout)!;
        Assert.Equal("""{"color":"red"}""", delta["state"]!.ToJsonString());
        Assert.Equal(2, delta["version"]!.GetValue<int>());
        Assert.True(delta["metadata"]!["color"]!["timestamp"]!.GetValue<long>() > 0);

        // The device reports the change: the delta is gone from the document.
        await RequestAsync(device, $"{prefix}/update", $"{prefix}/update/accepted", """{"state":{"reported":{"color":"red"}}}""");
        var get = await RequestAsync(device, $"{prefix}/get", $"{prefix}/get/accepted", string.Empty);
        Assert.Null(get["state"]!["delta"]);
        Assert.Equal("""{"color":"red","level":3}""", get["state"]!["reported"]!.ToJsonString());
        Assert.Equal(3, get["version"]!.GetValue<int>());
    }

    [Fact]
    public async Task Concurrent_updates_with_the_same_version_one_wins_the_other_gets_409()
    {
        var thing = TrellisHost.Unique("race");
        var results = await IotDataAsync(
            new { op = "create_thing", thing },
            new { op = "update", thing, payload = new { state = new { desired = new { mode = "init" } } } },
            new
            {
                parallel = new object[]
                {
                    new { op = "update", thing, payload = new { state = new { desired = new { mode = "a" } }, version = 1 } },
                    new { op = "update", thing, payload = new { state = new { desired = new { mode = "b" } }, version = 1 } },
                },
            },
            new { op = "get", thing });

        var race = results[2]!.AsArray();
        Assert.Equal([200, 409], race.Select(r => r!["status"]!.GetValue<int>()).Order());
        var loser = race.Single(r => r!["status"]!.GetValue<int>() == 409)!;
        Assert.Equal("ConflictException", loser["error"]!.GetValue<string>());
        var winner = race.Single(r => r!["status"]!.GetValue<int>() == 200)!;
        var final = results[3]!["body"]!;
        Assert.Equal(2, final["version"]!.GetValue<int>());
        Assert.Equal(winner["body"]!["state"]!["desired"]!["mode"]!.GetValue<string>(), final["state"]!["desired"]!["mode"]!.GetValue<string>());

        // Over MQTT the stale version is rejected with the documented document, token echoed.
        var rejected = await AdminRequestAsync($"$aws/things/{thing}/shadow/update", $"$aws/things/{thing}/shadow/update/rejected", """{"state":{"desired":{"mode":"c"}},"version":1,"clientToken":"stale"}""");
        Assert.Equal(409, rejected["code"]!.GetValue<int>());
        Assert.Equal("Version conflict", rejected["message"]!.GetValue<string>());
        Assert.Equal("stale", rejected["clientToken"]!.GetValue<string>());
    }

    [Fact]
    public async Task Named_shadows_are_isolated_from_each_other_and_from_the_classic_shadow()
    {
        var thing = TrellisHost.Unique("multi");
        var results = await IotDataAsync(
            new { op = "create_thing", thing },
            new { op = "update", thing, payload = new { state = new { reported = new { classic = 1 } } } },
            new { op = "update", thing, name = "config", payload = new { state = new { reported = new { config = 2 } } } },
            new { op = "update", thing, name = "firmware", payload = new { state = new { desired = new { version = "2.0" } } } },
            new { op = "get", thing },
            new { op = "get", thing, name = "config" },
            new { op = "get", thing, name = "firmware" },
            new { op = "list", thing },
            new { op = "delete", thing, name = "config" },
            new { op = "get", thing, name = "config" },
            new { op = "list", thing },
            new { op = "get", thing });

        Assert.Equal("""{"reported":{"classic":1}}""", results[4]!["body"]!["state"]!.ToJsonString());
        Assert.Equal("""{"reported":{"config":2}}""", results[5]!["body"]!["state"]!.ToJsonString());
        Assert.Equal("""{"desired":{"version":"2.0"},"delta":{"version":"2.0"}}""", results[6]!["body"]!["state"]!.ToJsonString());
        Assert.Equal("""["config","firmware"]""", results[7]!["body"]!["results"]!.ToJsonString());
        Assert.Equal(1, results[8]!["body"]!["version"]!.GetValue<int>());
        Assert.Equal(404, results[9]!["status"]!.GetValue<int>());
        Assert.Equal("ResourceNotFoundException", results[9]!["error"]!.GetValue<string>());
        Assert.Equal("""["firmware"]""", results[10]!["body"]!["results"]!.ToJsonString());
        Assert.Equal("""{"reported":{"classic":1}}""", results[11]!["body"]!["state"]!.ToJsonString());

        // A named shadow over MQTT: its own topics, its own version.
        var named = await AdminRequestAsync($"$aws/things/{thing}/shadow/name/firmware/update", $"$aws/things/{thing}/shadow/name/firmware/update/accepted", """{"state":{"reported":{"version":"2.0"}}}""");
        Assert.Equal(2, named["version"]!.GetValue<int>());
    }

    [Fact]
    public async Task Another_device_cannot_read_or_update_this_devices_shadow()
    {
        var owner = await host.ProvisionAsync(TrellisHost.Unique("own"), TrellisHost.Unique("shadow"), ShadowPolicy, Ct);
        var other = await host.ProvisionAsync(TrellisHost.Unique("oth"), TrellisHost.Unique("shadow"), ShadowPolicy, Ct);
        var prefix = $"$aws/things/{owner.ThingName}/shadow";
        await RequestAsync(owner, $"{prefix}/update", $"{prefix}/update/accepted", """{"state":{"reported":{"secret":"s1"}}}""");

        // MQTT 5: the publish is refused with 0x87; the subscription too.
        var write = await ExternalTool.RunAsync("mosquitto_pub", [.. host.TlsArgs(other, version: "mqttv5"), "-t", $"{prefix}/update", "-m", """{"state":{"reported":{"secret":"stolen"}}}""", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.Contains("Not authorized", write.Output, StringComparison.Ordinal);
        var read = await ExternalTool.RunAsync("mosquitto_sub", [.. host.TlsArgs(other, version: "mqttv5"), "-t", $"{prefix}/get/accepted", "-W", "3"], Timeout, cancellationToken: Ct);
        Assert.Contains("All subscription requests were denied", read.Output, StringComparison.Ordinal);

        // MQTT 3.1.1: a denied publish closes the connection (as AWS does); the shadow is unchanged.
        var write311 = await ExternalTool.RunAsync("mosquitto_pub", [.. host.TlsArgs(other), "-t", $"{prefix}/get", "-n", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(write311.ExitCode is not (0 or -1), $"expected a refusal, not success or a time-out (-1): exit {write311.ExitCode}: {write311.Output}");
        var get = await IotDataAsync(new { op = "get", thing = owner.ThingName });
        Assert.Equal("s1", get[0]!["body"]!["state"]!["reported"]!["secret"]!.GetValue<string>());
        Assert.Equal(1, get[0]!["body"]!["version"]!.GetValue<int>());
    }

    [Theory]
    [InlineData("not json", 400, "Invalid JSON")]
    [InlineData("""{"state":{"desired":"on"}}""", 400, "Desired node must be an object")]
    [InlineData("""{"state":{"reported":{"a":1}},"version":"one"}""", 400, "Invalid version")]
    [InlineData("""{"state":{"desired":{"a":{"b":{"c":{"d":{"e":{"f":{"g":1}}}}}}}}}""", 400, "JSON contains too many levels of nesting; maximum is 6")]
    [InlineData("""{"state":{"reported":{"a":1}},"clientToken":"0123456789012345678901234567890123456789012345678901234567890123456789"}""", 400, "Invalid clientToken")]
    public async Task Bad_updates_over_mqtt_get_the_documented_rejected_codes(string payload, int code, string message)
    {
        var thing = TrellisHost.Unique("bad");
        await IotDataAsync(new { op = "create_thing", thing });
        var rejected = await AdminRequestAsync($"$aws/things/{thing}/shadow/update", $"$aws/things/{thing}/shadow/update/rejected", payload);

        Assert.Equal(code, rejected["code"]!.GetValue<int>());
        Assert.Equal(message, rejected["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task Oversized_updates_unknown_things_and_bad_http_bodies_are_refused_and_nothing_is_written()
    {
        var thing = TrellisHost.Unique("big");
        var big = "{\"state\":{\"reported\":{\"blob\":\"" + new string('x', 9000) + "\"}},\"clientToken\":\"big1\"}";
        await IotDataAsync(new { op = "create_thing", thing });
        var tooLarge = await AdminRequestAsync($"$aws/things/{thing}/shadow/update", $"$aws/things/{thing}/shadow/update/rejected", big);
        Assert.Equal(413, tooLarge["code"]!.GetValue<int>());

        var unknown = await AdminRequestAsync("$aws/things/no-such-thing/shadow/get", "$aws/things/no-such-thing/shadow/get/rejected", """{"clientToken":"u1"}""");
        Assert.Equal(404, unknown["code"]!.GetValue<int>());
        Assert.Equal("u1", unknown["clientToken"]!.GetValue<string>());

        var results = await IotDataAsync(
            new { op = "update", thing, raw = "{not json" },
            new { op = "update", thing, raw = big },
            new { op = "get", thing },
            new { op = "update", thing = "no-such-thing", payload = new { state = new { reported = new { a = 1 } } } });
        Assert.Equal((400, "InvalidRequestException"), Status(results[0]));
        Assert.Equal((413, "RequestEntityTooLargeException"), Status(results[1]));
        Assert.Equal((404, "ResourceNotFoundException"), Status(results[2]));
        Assert.Equal((404, "ResourceNotFoundException"), Status(results[3]));
    }

    [Fact]
    public async Task Replies_reach_the_requesting_device_even_without_a_subscription()
    {
        var device = await host.ProvisionAsync(TrellisHost.Unique("nosub"), TrellisHost.Unique("shadow"), ShadowPolicy, Ct);
        await using var client = await TrellisDevice.ConnectAsync(DeviceOptions.FromPemFiles("127.0.0.1", host.MqttsPort, device.ThingName, device.CertPath, device.KeyPath, host.CaPath), Ct);
        var replies = new List<string>();
        client.Mqtt.ApplicationMessageReceivedAsync += e =>
        {
            lock (replies)
            {
                replies.Add(e.ApplicationMessage.Topic);
            }

            return Task.CompletedTask;
        };

        // Raw MQTT, no SUBSCRIBE: the update/accepted and get/rejected replies still arrive.
        await client.PublishAsync($"$aws/things/{device.ThingName}/shadow/get", "{}"u8.ToArray(), 1, Ct);
        await client.PublishAsync($"$aws/things/{device.ThingName}/shadow/update", """{"state":{"reported":{"on":true}}}"""u8.ToArray(), 1, Ct);

        Assert.True(await Eventually.TrueAsync(
            () =>
            {
                lock (replies)
                {
                    return replies.Contains($"$aws/things/{device.ThingName}/shadow/get/rejected") && replies.Contains($"$aws/things/{device.ThingName}/shadow/update/accepted");
                }
            },
            Timeout,
            Ct));
    }

    [Fact]
    public async Task Device_sdk_applies_desired_state_and_reports_it_back_including_changes_made_while_offline()
    {
        var device = await host.ProvisionAsync(TrellisHost.Unique("sdk"), TrellisHost.Unique("shadow"), ShadowPolicy, Ct);
        var options = DeviceOptions.FromPemFiles("localhost", host.MqttsPort, device.ThingName, device.CertPath, device.KeyPath, host.CaPath);

        // Desired is set before the device ever connects.
        await IotDataAsync(new { op = "update", thing = device.ThingName, payload = new { state = new { desired = new { color = "green" } } } });

        await using (var client = await TrellisDevice.ConnectAsync(options, Ct))
        {
            var shadow = client.Shadow();
            var applied = new List<string>();
            shadow.OnDelta(delta =>
            {
                lock (applied)
                {
                    applied.Add(delta.ToJsonString());
                }

                return delta;
            });
            await shadow.StartAsync(Ct);
            Assert.True(await ReportedBecomesAsync(device.ThingName, "green"), "the offline delta was not applied and reported");

            // While connected: an application changes desired; the SDK applies and reports it.
            await IotDataAsync(new { op = "update", thing = device.ThingName, payload = new { state = new { desired = new { color = "purple" } } } });
            Assert.True(await ReportedBecomesAsync(device.ThingName, "purple"), "the live delta was not applied and reported");
            lock (applied)
            {
                Assert.Equal(["""{"color":"green"}""", """{"color":"purple"}"""], applied);
            }

            // Versions: a stale expected version is a 409 for the SDK too.
            var current = await shadow.GetAsync(Ct);
            Assert.Null(current!.Delta);
            var conflict = await Assert.ThrowsAsync<ShadowRejectedException>(() => shadow.UpdateAsync(null, new JsonObject { ["x"] = 1 }, current.Version - 1, Ct));
            Assert.Equal(409, conflict.Code);
            Assert.Equal(current.Version + 1, await shadow.UpdateAsync(null, new JsonObject { ["x"] = 1 }, current.Version, Ct));
        }

    }

    [Fact]
    public async Task Updates_beyond_twenty_per_second_per_thing_are_throttled_with_429()
    {
        var thing = TrellisHost.Unique("fast");
        await IotDataAsync(new { op = "create_thing", thing });
        var prefix = $"$aws/things/{thing}/shadow";
        using var client = new MqttClientFactory().CreateMqttClient();
        var replies = new List<(string Topic, JsonNode Body)>();
        client.ApplicationMessageReceivedAsync += e =>
        {
            lock (replies)
            {
                replies.Add((e.ApplicationMessage.Topic, JsonNode.Parse(e.ApplicationMessage.Payload.ToArray())!));
            }

            return Task.CompletedTask;
        };
        var admin = host.Server.AccessKeys.AdminAccessKeyId;
        await client.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", host.MqttPort).WithCredentials(admin, host.Server.AccessKeys.SecretFor(admin)).WithClientId(TrellisHost.Unique("burst")).Build(), Ct);
        await client.SubscribeAsync($"{prefix}/update/+", MqttQualityOfServiceLevel.AtLeastOnce, Ct);

        // A burst of 40 updates on one connection, well within a second.
        var burst = System.Diagnostics.Stopwatch.StartNew();
        for (var i = 0; i < 40; i++)
        {
            await client.PublishStringAsync($"{prefix}/update", "{\"state\":{\"reported\":{\"n\":" + i + "}}}", MqttQualityOfServiceLevel.AtMostOnce, cancellationToken: Ct);
        }

        Assert.True(await Eventually.TrueAsync(() => Count(r => r.Topic.EndsWith("/accepted", StringComparison.Ordinal) || r.Topic.EndsWith("/rejected", StringComparison.Ordinal)) >= 40, Timeout, Ct));
        var took = burst.Elapsed; // from the first send to the last reply: the server handled the burst within it
        var accepted = Count(r => r.Topic.EndsWith("/accepted", StringComparison.Ordinal));
        List<JsonNode> rejected;
        lock (replies)
        {
            rejected = [.. replies.Where(r => r.Topic.EndsWith("/rejected", StringComparison.Ordinal)).Select(r => r.Body)];
        }

        // A bucket of 20, refilled at 20/s while the burst runs: 20 to 30 when it takes half a second,
        // more only as far as a loaded machine stretched the burst.
        Assert.InRange(accepted, 20, Math.Max(30, 21 + (int)(20 * took.TotalSeconds)));
        Assert.Equal(40 - accepted, rejected.Count);
        Assert.All(rejected, r => Assert.Equal((429, "Too Many Requests"), (r["code"]!.GetValue<int>(), r["message"]!.GetValue<string>())));

        // Throttled updates wrote nothing: the version counts the accepted ones only.
        var get = await IotDataAsync(new { op = "get", thing });
        Assert.Equal(accepted, get[0]!["body"]!["version"]!.GetValue<int>());
        await client.DisconnectAsync(cancellationToken: Ct);

        int Count(Func<(string Topic, JsonNode Body), bool> predicate)
        {
            lock (replies)
            {
                return replies.Count(predicate);
            }
        }
    }

    [Fact]
    public async Task Update_documents_carry_previous_and_current_for_subscribers()
    {
        var thing = TrellisHost.Unique("docs");
        await IotDataAsync(new { op = "create_thing", thing }, new { op = "update", thing, payload = new { state = new { reported = new { a = 1 } } } });
        using var sub = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(TrellisHost.Unique("op")), "-t", $"$aws/things/{thing}/shadow/update/documents", "-q", "1"]);
        Assert.True(await Eventually.TrueAsync(() => host.Server.Broker.HasSubscribers($"$aws/things/{thing}/shadow/update/documents"), Timeout, Ct));

        await AdminRequestAsync($"$aws/things/{thing}/shadow/update", $"$aws/things/{thing}/shadow/update/accepted", """{"state":{"reported":{"a":2}},"clientToken":"d1"}""");

        Assert.True(await sub.WaitForLineAsync(l => l.Contains("\"d1\"", StringComparison.Ordinal), Timeout, Ct), "no documents message: " + string.Join('|', sub.Lines));
        var documents = JsonNode.Parse(sub.Lines.First(l => l.Contains("\"d1\"", StringComparison.Ordinal)))!;
        Assert.Equal(1, documents["previous"]!["version"]!.GetValue<int>());
        Assert.Equal("""{"reported":{"a":1}}""", documents["previous"]!["state"]!.ToJsonString());
        Assert.Equal(2, documents["current"]!["version"]!.GetValue<int>());
        Assert.Equal("""{"reported":{"a":2}}""", documents["current"]!["state"]!.ToJsonString());
    }

    [Fact]
    public async Task Shadows_survive_a_restart_and_keep_counting_versions_after_a_delete()
    {
        var thing = TrellisHost.Unique("keep");
        await IotDataAsync(
            new { op = "create_thing", thing },
            new { op = "update", thing, payload = new { state = new { reported = new { a = 1 } } } },
            new { op = "update", thing, name = "cfg", payload = new { state = new { desired = new { b = 2 } } } },
            new { op = "update", thing, name = "cfg", payload = new { state = new { desired = new { b = 3 } } } },
            new { op = "delete", thing, name = "cfg" });

        await host.RestartAsync();

        var results = await IotDataAsync(
            new { op = "get", thing },
            new { op = "get", thing, name = "cfg" },
            new { op = "update", thing, name = "cfg", payload = new { state = new { desired = new { b = 4 } } } });
        Assert.Equal("""{"reported":{"a":1}}""", results[0]!["body"]!["state"]!.ToJsonString());
        Assert.Equal(1, results[0]!["body"]!["version"]!.GetValue<int>());
        Assert.Equal(404, results[1]!["status"]!.GetValue<int>());
        Assert.Equal(3, results[2]!["body"]!["version"]!.GetValue<int>());
    }

    [Fact]
    public async Task Http_publish_reaches_mqtt_subscribers_and_reaches_the_shadow_service()
    {
        var thing = TrellisHost.Unique("pub");
        var topic = $"telemetry/{thing}";
        var subscriber = TrellisHost.Unique("op");
        using var sub = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(subscriber), "-t", topic, "-v", "-q", "1"]);
        await host.WaitSubscribedAsync(subscriber, sub, topic);
        var results = await IotDataAsync(
            new { op = "create_thing", thing },
            new { op = "publish", topic, payload = "21.5", qos = 1 },
            new { op = "publish", topic = $"$aws/things/{thing}/shadow/update", payload = """{"state":{"reported":{"t":21.5}}}""", qos = 1 },
            new { op = "get", thing },
            new { op = "publish", topic = "bad/+/topic", payload = "x" });

        Assert.Equal(200, results[1]!["status"]!.GetValue<int>());
        Assert.True(await sub.WaitForLineAsync(l => l == $"{topic} 21.5", Timeout, Ct), "subscriber did not receive: " + string.Join('|', sub.Lines));
        Assert.Equal(21.5, results[3]!["body"]!["state"]!["reported"]!["t"]!.GetValue<double>());
        Assert.Equal((400, "InvalidRequestException"), Status(results[4]));
    }

    /// <summary>Polls the shadow (through the server's shadow service) until reported.color is <paramref name="color"/>.</summary>
    private async Task<bool> ReportedBecomesAsync(string thing, string color)
    {
        var shadows = (Trellis.Shadows.ShadowService)host.Server.Services.GetService(typeof(Trellis.Shadows.ShadowService))!;
        var deadline = DateTime.UtcNow + Timeout;
        while (DateTime.UtcNow < deadline)
        {
            var result = await shadows.GetAsync(new Trellis.Shadows.ShadowKey(thing, string.Empty), ReadOnlyMemory<byte>.Empty);
            if (result.Accepted && JsonNode.Parse(result.Document!)!["state"]!["reported"]?["color"]?.GetValue<string>() == color)
            {
                return true;
            }

            await Task.Delay(50, Ct);
        }

        return false;
    }

    private static (int, string?) Status(JsonNode? result) => (result!["status"]!.GetValue<int>(), result["error"]?.GetValue<string>());

    /// <summary>Runs boto3 operations (Scripts/iotdata.py) and returns one result per operation.</summary>
    private async Task<JsonArray> IotDataAsync(params object[] operations)
    {
        var script = Path.Combine(AppContext.BaseDirectory, "Scripts", "iotdata.py");
        var json = System.Text.Json.JsonSerializer.Serialize(operations);
        var result = await ExternalTool.RunAsync("python3", [script, host.Endpoint, json], TimeSpan.FromSeconds(60), host.AwsEnvironment, Ct);
        Assert.True(result.ExitCode == 0, "iotdata.py failed: " + result.Output);
        return JsonNode.Parse(result.Stdout)!.AsArray();
    }

    /// <summary>One request/response over TLS as <paramref name="device"/> with mosquitto_rr.</summary>
    private async Task<JsonNode> RequestAsync(ProvisionedDevice device, string topic, string responseTopic, string payload)
    {
        var result = await ExternalTool.RunAsync("mosquitto_rr", [.. host.TlsArgs(device, version: "mqttv5"), "-t", topic, "-e", responseTopic, "-m", payload, "-q", "1", "-W", "10"], Timeout, cancellationToken: Ct);
        Assert.True(result.ExitCode == 0 && result.Stdout.Length > 0, $"mosquitto_rr {topic}: {result.Output}");
        return JsonNode.Parse(result.Stdout)!;
    }

    /// <summary>One request/response on the plain listener with the admin access key (allow-all).</summary>
    private async Task<JsonNode> AdminRequestAsync(string topic, string responseTopic, string payload)
    {
        var result = await ExternalTool.RunAsync("mosquitto_rr", [.. host.AdminArgs(TrellisHost.Unique("op"), "mqttv5"), "-t", topic, "-e", responseTopic, "-m", payload, "-q", "1", "-W", "10"], Timeout, cancellationToken: Ct);
        Assert.True(result.ExitCode == 0 && result.Stdout.Length > 0, $"mosquitto_rr {topic}: {result.Output}");
        return JsonNode.Parse(result.Stdout)!;
    }
}
