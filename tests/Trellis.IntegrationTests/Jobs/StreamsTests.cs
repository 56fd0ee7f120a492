using System.Formats.Cbor;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using MQTTnet;
using Trellis.Device;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Jobs;

/// <summary>
/// AWS IoT streams: the control plane through boto3, and the MQTT file delivery devices use
/// (describe and blocks by offset or bitmap, JSON with mosquitto clients, CBOR with an MQTT client),
/// with AWS's refusals.
/// </summary>
[Collection(TrellisServerGroup.Name)]
public sealed class StreamsTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_stream_serves_an_image_in_blocks_over_mqtt_in_json_and_cbor_and_refuses_bad_requests()
    {
        var image = RandomNumberGenerator.GetBytes(300_000);
        var name = TrellisHost.Unique("fw") + ".bin";
        var path = Path.Combine(host.DataDirectory, name);
        await File.WriteAllBytesAsync(path, image, Ct);
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["firmware", "upload", name, path], Ct)).ExitCode);

        var streamId = TrellisHost.Unique("ota");
        var files = new[] { new { fileId = 0, s3Location = new { bucket = "firmware", key = name } } };
        const string Role = "arn:aws:iam::000000000000:role/ota-streams";
        var r = await host.IotCallsAsync([
            ("create_stream", new { streamId, description = "lamp 2.1.0", files, roleArn = Role }),
            ("create_stream", new { streamId, files, roleArn = Role }),
            ("create_stream", new { streamId = TrellisHost.Unique("ota"), files = new[] { new { fileId = 0, s3Location = new { bucket = "firmware", key = "no-such-image" } } }, roleArn = Role }),
            ("update_stream", new { streamId, description = "lamp 2.1.0 (rebuilt)", files }),
            ("describe_stream", new { streamId }),
            ("list_streams", new { maxResults = 250 }),
        ], Ct);
        Assert.Equal((200, 1), (r[0]!["status"]!.GetValue<int>(), r[0]!["body"]!["streamVersion"]!.GetValue<int>()));
        Assert.Equal((409, "ResourceAlreadyExistsException"), (r[1]!["status"]!.GetValue<int>(), r[1]!["error"]!.GetValue<string>()));
        Assert.Equal((404, "ResourceNotFoundException"), (r[2]!["status"]!.GetValue<int>(), r[2]!["error"]!.GetValue<string>()));
        Assert.Equal(2, r[3]!["body"]!["streamVersion"]!.GetValue<int>());
        var info = r[4]!["body"]!["streamInfo"]!;
        Assert.Equal(("lamp 2.1.0 (rebuilt)", name, Role), (info["description"]!.GetValue<string>(), info["files"]![0]!["s3Location"]!["key"]!.GetValue<string>(), info["roleArn"]!.GetValue<string>()));
        Assert.Contains(r[5]!["body"]!["streams"]!.AsArray(), s => s!["streamId"]!.GetValue<string>() == streamId);

        var thing = TrellisHost.Unique("lamp");
        var device = await host.ProvisionAsync(thing, TrellisHost.Unique("ota"), Policies.OwnJobsAndStreams, Ct);
        var prefix = $"$aws/things/{thing}/streams/{streamId}";

        // Describe (JSON, mosquitto_rr): the version and each file's size.
        var description = await RequestAsync(device, $"{prefix}/describe/json", $"{prefix}/description/json", """{"c":"d-1"}""");
        Assert.Equal(("d-1", 2, 0, (long)image.Length), (description["c"]!.GetValue<string>(), description["s"]!.GetValue<int>(), description["r"]![0]!["f"]!.GetValue<int>(), description["r"]![0]!["z"]!.GetValue<long>()));

        // One block of 1 KiB (JSON, mosquitto_rr): block 10, its bytes in base64.
        var one = await RequestAsync(device, $"{prefix}/get/json", $"{prefix}/data/json", """{"c":"g-1","s":2,"f":0,"l":1024,"o":10}""");
        Assert.Equal(("g-1", 0, 1024, 10), (one["c"]!.GetValue<string>(), one["f"]!.GetValue<int>(), one["l"]!.GetValue<int>(), one["i"]!.GetValue<int>()));
        Assert.Equal(image[10240..11264], Convert.FromBase64String(one["p"]!.GetValue<string>()));

        // Refusals on …/rejected/json with AWS's codes.
        var stale = await RequestAsync(device, $"{prefix}/get/json", $"{prefix}/rejected/json", """{"c":"g-2","s":1,"f":0,"l":1024}""");
        Assert.Equal(("VersionMismatch", "g-2"), (stale["o"]!.GetValue<string>(), stale["c"]!.GetValue<string>()));
        Assert.Equal("BlockSizeOutOfBounds", (await RequestAsync(device, $"{prefix}/get/json", $"{prefix}/rejected/json", """{"f":0,"l":16}"""))["o"]!.GetValue<string>());
        Assert.Equal("OffsetOutOfBounds", (await RequestAsync(device, $"{prefix}/get/json", $"{prefix}/rejected/json", """{"f":0,"l":1024,"o":5000}"""))["o"]!.GetValue<string>());
        Assert.Equal("ResourceNotFound", (await RequestAsync(device, $"{prefix}/get/json", $"{prefix}/rejected/json", """{"f":7,"l":1024}"""))["o"]!.GetValue<string>());
        Assert.Equal("InvalidJson", (await RequestAsync(device, $"{prefix}/get/json", $"{prefix}/rejected/json", "{f:"))["o"]!.GetValue<string>());

        // CBOR with a bitmap: blocks 0 and 2 of 4 KiB, then the last, shorter block; the payload is a byte string.
        await using var client = await TrellisDevice.ConnectAsync(DeviceOptions.FromPemFiles("localhost", host.MqttsPort, thing, device.CertPath, device.KeyPath, host.CaPath), Ct);
        var received = new System.Collections.Concurrent.ConcurrentQueue<(string Topic, byte[] Payload)>();
        client.Mqtt.ApplicationMessageReceivedAsync += e =>
        {
            received.Enqueue((e.ApplicationMessage.Topic, System.Buffers.BuffersExtensions.ToArray(e.ApplicationMessage.Payload)));
            return Task.CompletedTask;
        };
        await client.Mqtt.SubscribeAsync(new MqttClientSubscribeOptionsBuilder().WithTopicFilter($"{prefix}/data/cbor").WithTopicFilter($"{prefix}/rejected/cbor").WithTopicFilter($"{prefix}/data/json").Build(), Ct);

        // Three blocks from block 20 in one JSON request: one message each.
        await client.PublishAsync($"{prefix}/get/json", System.Text.Encoding.UTF8.GetBytes("""{"f":0,"l":1024,"o":20,"n":3}"""), cancellationToken: Ct);
        Assert.True(await Eventually.TrueAsync(() => received.Count >= 3, Timeout, Ct), $"{received.Count} JSON blocks");
        var json = received.Select(m => JsonNode.Parse(m.Payload)!).OrderBy(b => b["i"]!.GetValue<int>()).ToList();
        Assert.Equal([20, 21, 22], json.Select(b => b["i"]!.GetValue<int>()));
        Assert.All(json, b => Assert.Equal(image[(b["i"]!.GetValue<int>() * 1024)..((b["i"]!.GetValue<int>() + 1) * 1024)], Convert.FromBase64String(b["p"]!.GetValue<string>())));
        received.Clear();

        await client.PublishAsync($"{prefix}/get/cbor", Cbor(w =>
        {
            w.WriteTextString("c");
            w.WriteTextString("rdy");
            w.WriteTextString("f");
            w.WriteInt32(0);
            w.WriteTextString("l");
            w.WriteInt32(4096);
            w.WriteTextString("o");
            w.WriteInt32(0);
            w.WriteTextString("b");
            w.WriteByteString([0b0000_0101]);
        }), cancellationToken: Ct);
        var last = image.Length / 4096;
        await client.PublishAsync($"{prefix}/get/cbor", Cbor(w =>
        {
            w.WriteTextString("f");
            w.WriteInt32(0);
            w.WriteTextString("l");
            w.WriteInt32(4096);
            w.WriteTextString("o");
            w.WriteInt32(last);
            w.WriteTextString("n");
            w.WriteInt32(1);
        }), cancellationToken: Ct);
        await client.PublishAsync($"{prefix}/get/cbor", new byte[] { 0xA1, 0x61 }, cancellationToken: Ct); // cut short
        Assert.True(await Eventually.TrueAsync(() => received.Count >= 4, Timeout, Ct), $"{received.Count} CBOR answers");
        var byBlock = received.Where(m => m.Topic.EndsWith("/data/cbor", StringComparison.Ordinal)).Select(m => DecodeBlock(m.Payload)).ToDictionary(b => b.Block);
        Assert.Equal([0, 2, last], byBlock.Keys.Order());
        Assert.Equal(image[..4096], byBlock[0].Payload);
        Assert.Equal(image[8192..12288], byBlock[2].Payload);
        Assert.Equal(image[(last * 4096)..], byBlock[last].Payload);
        Assert.Equal("rdy", byBlock[0].Token);
        Assert.Contains(received, m => m.Topic.EndsWith("/rejected/cbor", StringComparison.Ordinal) && DecodeError(m.Payload) == "InvalidCbor");

        var deleted = await host.IotCallsAsync([("delete_stream", new { streamId }), ("describe_stream", new { streamId })], Ct);
        Assert.Equal((200, 404), (deleted[0]!["status"]!.GetValue<int>(), deleted[1]!["status"]!.GetValue<int>()));
    }

    private static byte[] Cbor(Action<CborWriter> members)
    {
        var writer = new CborWriter();
        writer.WriteStartMap(null);
        members(writer);
        writer.WriteEndMap();
        return writer.Encode();
    }

    private static (int Block, string? Token, byte[] Payload) DecodeBlock(byte[] payload)
    {
        var reader = new CborReader(payload);
        reader.ReadStartMap();
        (int Block, string? Token, byte[] Payload) block = (-1, null, []);
        while (reader.PeekState() != CborReaderState.EndMap)
        {
            switch (reader.ReadTextString())
            {
                case "i":
                    block.Block = reader.ReadInt32();
                    break;
                case "c":
                    block.Token = reader.ReadTextString();
                    break;
                case "p":
                    block.Payload = reader.ReadByteString();
                    break;
                default:
                    reader.SkipValue();
                    break;
            }
        }

        return block;
    }

    private static string? DecodeError(byte[] payload)
    {
        var reader = new CborReader(payload);
        reader.ReadStartMap();
        while (reader.PeekState() != CborReaderState.EndMap)
        {
            if (reader.ReadTextString() == "o")
            {
                return reader.ReadTextString();
            }

            reader.SkipValue();
        }

        return null;
    }

    private async Task<JsonNode> RequestAsync(ProvisionedDevice device, string topic, string answer, string payload)
    {
        var result = await ExternalTool.RunAsync("mosquitto_rr", [.. host.TlsArgs(device, version: "mqttv5"), "-t", topic, "-e", answer, "-m", payload, "-q", "1", "-W", "10"], Timeout, cancellationToken: Ct);
        Assert.True(result.ExitCode == 0 && result.Stdout.Length > 0, $"mosquitto_rr {topic}: {result.Output}");
        return JsonNode.Parse(result.Stdout)!;
    }
}
