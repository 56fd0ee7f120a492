using System.Text;
using System.Text.Json.Nodes;
using Trellis.Device;
using Trellis.IntegrationTests.TestKit;
using Trellis.Server;

namespace Trellis.IntegrationTests.Api;

/// <summary>A server that lets one principal have three key pairs made and then one every 1000 seconds (none within a test), and a client hold five topic filters.</summary>
public sealed class TightProvisioningHost : TrellisHost
{
    public TightProvisioningHost()
        : base(allowAnonymous: false, b => b.MaxSubscriptionsPerClient = 5)
    {
    }

    protected override TrellisServerOptions Configure(TrellisServerOptions options) => options with
    {
        Provisioning = new Registry.Provisioning.ProvisioningOptions { KeysPerSecondPerPrincipal = 0.001, KeyBurstPerPrincipal = 3 },
    };
}

[CollectionDefinition(Name)]
public sealed class TightProvisioningGroup : ICollectionFixture<TightProvisioningHost>
{
    public const string Name = "tight-provisioning";
}

/// <summary>
/// One claim certificate cannot keep the server making key pairs: past its burst, create requests get
/// a /rejected reply with 429 ThrottlingException, while another principal is still served; and a
/// client's topic filters are capped, with the SUBACK saying which were refused (mosquitto_sub).
/// </summary>
[Collection(TightProvisioningGroup.Name)]
public sealed class ProvisioningLimitsTests(TightProvisioningHost host)
{
    private const string ClaimPolicy = """
        {"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"iot:Connect","Resource":"*"},
          {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":["arn:aws:iot:*:*:topic/$aws/certificates/create/*","arn:aws:iot:*:*:topic/$aws/certificates/create-from-csr/*"]},
          {"Effect":"Allow","Action":"iot:Subscribe","Resource":["arn:aws:iot:*:*:topicfilter/$aws/certificates/create/*","arn:aws:iot:*:*:topicfilter/$aws/certificates/create-from-csr/*"]}]}
        """;

    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_claim_certificate_past_its_burst_is_throttled_and_another_principal_is_not()
    {
        var first = await ClaimAsync();
        var answers = await CreateAsync(first, 6);
        Assert.Equal(3, answers.Count(a => a.Topic.EndsWith("/accepted", StringComparison.Ordinal)));
        var throttled = answers.Where(a => a.Topic.EndsWith("/rejected", StringComparison.Ordinal)).ToList();
        Assert.Equal(3, throttled.Count);
        Assert.All(throttled, t =>
        {
            Assert.Equal(429, t.Body["statusCode"]!.GetValue<int>());
            Assert.Equal("ThrottlingException", t.Body["errorCode"]!.GetValue<string>());
            Assert.Contains("key pairs made by the server per second for one principal", t.Body["errorMessage"]!.GetValue<string>(), StringComparison.Ordinal);
        });

        // Three certificates were made for the first claim, not six.
        var certificates = (await host.IotCallsAsync([("list_certificates", new { pageSize = 250 })], Ct))[0]!["body"]!["certificates"]!.AsArray().Count;
        var second = await ClaimAsync();
        var other = await CreateAsync(second, 1);
        Assert.EndsWith("/accepted", other[0].Topic, StringComparison.Ordinal);
        Assert.Equal(certificates + 2, (await host.IotCallsAsync([("list_certificates", new { pageSize = 250 })], Ct))[0]!["body"]!["certificates"]!.AsArray().Count);
    }

    [Fact]
    public async Task A_provisioning_claim_from_the_api_provisions_a_device_with_mosquitto_rr_and_is_rate_limited()
    {
        var template = TrellisHost.Unique("claimtpl");
        var body = """{"Parameters":{"SerialNumber":{"Type":"String"}},"Resources":{"thing":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Fn::Join":["",["pc-",{"Ref":"SerialNumber"}]]}}},"certificate":{"Type":"AWS::IoT::Certificate","Properties":{"CertificateId":{"Ref":"AWS::IoT::Certificate::Id"},"Status":"ACTIVE"}}}}""";
        var calls = await host.IotCallsAsync([
            ("create_provisioning_template", new { templateName = template, templateBody = body, provisioningRoleArn = "arn:aws:iam::000000000000:role/p", enabled = true }),
            ("create_provisioning_claim", new { templateName = template }),
        ], Ct);
        Assert.True(calls[0]!["status"]!.GetValue<int>() == 200, calls[0]!.ToJsonString());
        Assert.True(calls[1]!["status"]!.GetValue<int>() == 200, calls[1]!.ToJsonString());
        var claim = calls[1]!["body"]!;
        var expires = DateTimeOffset.FromUnixTimeMilliseconds((long)(claim["expiration"]!.GetValue<double>() * 1000));
        Assert.InRange(expires - DateTimeOffset.UtcNow, TimeSpan.FromMinutes(4), TimeSpan.FromMinutes(6));

        var dir = Directory.CreateDirectory(Path.Combine(host.DataDirectory, TrellisHost.Unique("pc"))).FullName;
        var (cert, key) = (Path.Combine(dir, "claim.pem"), Path.Combine(dir, "claim.key"));
        await File.WriteAllTextAsync(cert, claim["certificatePem"]!.GetValue<string>(), Ct);
        await File.WriteAllTextAsync(key, claim["keyPair"]!["PrivateKey"]!.GetValue<string>(), Ct);
        List<string> claimArgs = ["-h", "127.0.0.1", "-p", host.MqttsPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "--cafile", host.CaPath, "--cert", cert, "--key", key, "-V", "mqttv5"];

        // The claim provisions a device with its template, and does nothing else.
        var keys = JsonNode.Parse((await ExternalTool.RunCheckedAsync("mosquitto_rr", [.. claimArgs, "-i", TrellisHost.Unique("pc"), "-t", "$aws/certificates/create/json", "-e", "$aws/certificates/create/json/accepted", "-m", "{}", "-W", "10"], Timeout, cancellationToken: Ct)).Stdout)!;
        var serial = TrellisHost.Unique("S");
        var provision = $"$aws/provisioning-templates/{template}/provision/json";
        var request = new JsonObject { ["certificateOwnershipToken"] = keys["certificateOwnershipToken"]!.GetValue<string>(), ["parameters"] = new JsonObject { ["SerialNumber"] = serial } };
        var registered = JsonNode.Parse((await ExternalTool.RunCheckedAsync("mosquitto_rr", [.. claimArgs, "-i", TrellisHost.Unique("pc"), "-t", provision, "-e", provision + "/accepted", "-m", request.ToJsonString(), "-W", "10"], Timeout, cancellationToken: Ct)).Stdout)!;
        Assert.Equal($"pc-{serial}", registered["thingName"]!.GetValue<string>());
        var elsewhere = await ExternalTool.RunAsync("mosquitto_pub", [.. claimArgs, "-i", TrellisHost.Unique("pc"), "-t", "devices/x/telemetry", "-m", "x", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(elsewhere.ExitCode == 0 && elsewhere.Output.Contains("Not authorized", StringComparison.Ordinal), elsewhere.Output);

        // The calling key has the same key-pair budget as a claim certificate (here 3).
        var more = await host.IotCallsAsync([.. Enumerable.Range(0, 3).Select(_ => ("create_provisioning_claim", (object)new { templateName = template }))], Ct);
        Assert.Equal([200, 200, 429], more.Select(r => r!["status"]!.GetValue<int>()));
        Assert.Equal("ThrottlingException", more[2]!["error"]!.GetValue<string>());
        Assert.Equal(404, (await host.IotCallsAsync([("create_provisioning_claim", new { templateName = template + "x" })], Ct))[0]!["status"]!.GetValue<int>());
    }

    [Theory]
    [InlineData("mqttv5", "151")]
    [InlineData("mqttv311", "128")]
    public async Task Topic_filters_beyond_the_cap_are_refused_in_the_suback(string version, string refusedCode)
    {
        var filters = Enumerable.Range(1, 7).SelectMany(i => new[] { "-t", TrellisHost.Unique($"cap{i}/") }).ToList();
        var sub = await ExternalTool.RunAsync("mosquitto_sub", [.. host.AdminArgs(TrellisHost.Unique("cap"), version), .. filters, "-d", "-E"], Timeout, cancellationToken: Ct);
        Assert.True(sub.ExitCode == 0, sub.Output);
        var granted = sub.Stdout.Split('\n').Single(l => l.StartsWith("Subscribed (mid: ", StringComparison.Ordinal));
        var codes = granted[(granted.IndexOf(':', 16) + 1)..].Split(',', StringSplitOptions.TrimEntries);
        Assert.Equal(["0", "0", "0", "0", "0", refusedCode, refusedCode], codes);
    }

    private async Task<List<(string Topic, JsonNode Body)>> CreateAsync((string CertPath, string KeyPath) claim, int count)
    {
        var options = DeviceOptions.FromPemFiles("127.0.0.1", host.MqttsPort, TrellisHost.Unique("claim"), claim.CertPath, claim.KeyPath, host.CaPath);
        await using var device = await TrellisDevice.ConnectAsync(options, Ct);
        var replies = System.Threading.Channels.Channel.CreateUnbounded<(string, JsonNode)>();
        device.Mqtt.ApplicationMessageReceivedAsync += e =>
        {
            replies.Writer.TryWrite((e.ApplicationMessage.Topic, JsonNode.Parse(Encoding.UTF8.GetString(e.ApplicationMessage.Payload))!));
            return Task.CompletedTask;
        };
        await device.Mqtt.SubscribeAsync(new MQTTnet.MqttClientSubscribeOptionsBuilder().WithTopicFilter("$aws/certificates/create/json/+").Build(), Ct);
        var answers = new List<(string Topic, JsonNode Body)>();
        for (var i = 0; i < count; i++)
        {
            await device.Mqtt.PublishAsync(new MQTTnet.MqttApplicationMessageBuilder().WithTopic("$aws/certificates/create/json").WithPayload("{}")
                .WithQualityOfServiceLevel(MQTTnet.Protocol.MqttQualityOfServiceLevel.AtLeastOnce).Build(), Ct);
            answers.Add(await replies.Reader.ReadAsync(Ct).AsTask().WaitAsync(Timeout, Ct));
        }

        return answers;
    }

    private async Task<(string CertPath, string KeyPath)> ClaimAsync()
    {
        var (_, cert, key) = await host.CreateClaimAsync(ClaimPolicy, Ct);
        return (cert, key);
    }
}
