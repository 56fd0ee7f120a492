using System.Globalization;
using System.Security.Cryptography;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Coap;

/// <summary>Block-wise transfers (RFC 7959) with libcoap's client: a 200 KB upload to a topic, a 1 MB firmware file down a stream, and the refusals on the way.</summary>
public sealed class CoapBlockwiseTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private const string DevicePolicy = """
        {"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
          {"Effect":"Allow","Action":"iot:Publish","Resource":["arn:aws:iot:*:*:topic/devices/${iot:Connection.Thing.ThingName}/*","arn:aws:iot:*:*:topic/$aws/things/${iot:Connection.Thing.ThingName}/streams/*"]}]}
        """;

    private readonly string _work = Path.Combine(Path.GetTempPath(), $"trellis-coap-blocks-{Guid.NewGuid():N}");

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public void Dispose()
    {
        if (Directory.Exists(_work))
        {
            Directory.Delete(_work, recursive: true);
        }
    }

    [Fact]
    public async Task A_200_KB_upload_and_a_1_MB_download_cross_in_blocks_and_arrive_whole()
    {
        Directory.CreateDirectory(_work);
        using var server = await ServerProcess.StartAsync(Path.Combine(_work, "data"), Ct, null, "--max-packet-bytes", "262144");
        var thing = "coap-blocks";
        var created = await server.IotCallsAsync([("create_thing", new { thingName = thing })], Ct);
        Assert.Equal(200, created[0]!["status"]!.GetValue<int>());
        var token = (await server.SignedAsync("POST", $"/api/things/{thing}/tokens", "{}", Ct))["body"]!;
        var attached = await server.IotCallsAsync([("create_policy", new { policyName = "coap-blocks", policyDocument = DevicePolicy }), ("attach_policy", new { policyName = "coap-blocks", target = token["tokenArn"]!.GetValue<string>() })], Ct);
        Assert.All(attached, r => Assert.Equal(200, r!["status"]!.GetValue<int>()));
        string Uri(string path, string query = "") => $"coap://127.0.0.1:{server.CoapPort}/{path}?thing={thing}&token={token["token"]!.GetValue<string>()}{query}";

        // 200 KB up in 1 KB blocks (Block1): received over MQTT as one message of the same bytes.
        var upload = RandomNumberGenerator.GetBytes(200 * 1024);
        var uploadPath = Path.Combine(_work, "upload.bin");
        await File.WriteAllBytesAsync(uploadPath, upload, Ct);
        using var sub = await ExternalTool.StartSubscriberAsync(["-h", "127.0.0.1", "-p", server.MqttPort.ToString(CultureInfo.InvariantCulture), "-i", "coap-watcher", "-t", $"devices/{thing}/#", "-q", "1", "-C", "1", "-F", "hex:%x"], Timeout, Ct);
        var up = await CoapAsync("-m", "post", "-b", "1024", "-f", uploadPath, Uri($"topics/devices/{thing}/blob", "&qos=1"));
        Assert.True(up.ExitCode == 0 && !up.Output.Contains("4.", StringComparison.Ordinal), up.Output);
        Assert.True(await sub.WaitForLineAsync(l => l.StartsWith("hex:", StringComparison.Ordinal), Timeout, Ct), "the upload did not arrive over MQTT: " + sub.Stderr);
        var received = Convert.FromHexString(sub.Lines.First(l => l.StartsWith("hex:", StringComparison.Ordinal))[4..]);
        Assert.Equal(SHA256.HashData(upload), SHA256.HashData(received));

        // Past the largest body (256 KB here): 4.13, and nothing is published.
        var tooLarge = Path.Combine(_work, "too-large.bin");
        await File.WriteAllBytesAsync(tooLarge, new byte[300 * 1024], Ct);
        Assert.Contains("4.13", (await CoapAsync("-m", "post", "-b", "1024", "-f", tooLarge, Uri($"topics/devices/{thing}/blob"))).Output, StringComparison.Ordinal);

        // 1 MB down a stream in blocks (Block2), byte for byte the uploaded image.
        var image = RandomNumberGenerator.GetBytes(1024 * 1024);
        var imagePath = Path.Combine(_work, "image.bin");
        await File.WriteAllBytesAsync(imagePath, image, Ct);
        var firmware = await ExternalTool.RunAsync(TrellisCli.FileName, [.. TrellisCli.Leading, "firmware", "upload", "lamp-2.1.0", imagePath, "--endpoint", server.Endpoint, "--data", Path.Combine(_work, "data")],
            Timeout, new Dictionary<string, string> { ["AWS_PROFILE"] = "trellis" }, Ct);
        Assert.True(firmware.ExitCode == 0, firmware.Output);
        var stream = await server.IotCallsAsync([("create_stream", new { streamId = "lamp", files = new[] { new { fileId = 0, s3Location = new { bucket = "firmware", key = "lamp-2.1.0" } } }, roleArn = "arn:aws:iam::000000000000:role/ota" })], Ct);
        Assert.Equal(200, stream[0]!["status"]!.GetValue<int>());
        var downloaded = Path.Combine(_work, "downloaded.bin");
        var down = await CoapAsync("-b", "1024", "-o", downloaded, Uri($"things/{thing}/streams/lamp/0"));
        Assert.True(down.ExitCode == 0, down.Output);
        Assert.Equal(SHA256.HashData(image), SHA256.HashData(await File.ReadAllBytesAsync(downloaded, Ct)));

        // Another thing's stream is out of this device's policy; a file the stream lacks is 4.04.
        Assert.Contains("4.03", (await CoapAsync(Uri("things/someone-else/streams/lamp/0"))).Output, StringComparison.Ordinal);
        Assert.Contains("4.04", (await CoapAsync(Uri($"things/{thing}/streams/lamp/7"))).Output, StringComparison.Ordinal);
    }

    private static Task<ExternalTool.Result> CoapAsync(params string[] args) =>
        ExternalTool.RunAsync("coap-client-notls", ["-B", "30", .. args], Timeout, cancellationToken: Ct);
}
