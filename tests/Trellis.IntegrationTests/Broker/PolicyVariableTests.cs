using System.Text.Json;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Broker;

/// <summary>Policy variables from the thing and the certificate, and policy versions, against real clients.</summary>
[Collection(TrellisServerGroup.Name)]
public sealed class PolicyVariableTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Thing_attribute_variable_follows_updates_to_the_thing()
    {
        const string policy = """
            {"Version":"2012-10-17","Statement":[
              {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
              {"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:*:*:topic/rooms/${iot:Connection.Thing.Attributes[room]}/*"}]}
            """;
        var device = await host.ProvisionAsync(TrellisHost.Unique("dev"), TrellisHost.Unique("pol"), policy, Ct);
        await AwsAsync(["iot", "update-thing", "--thing-name", device.ThingName, "--attribute-payload", "{\"attributes\":{\"room\":\"kitchen\"},\"merge\":true}"]);

        var kitchen = await ExternalTool.RunAsync("mosquitto_pub", [.. host.TlsArgs(device, version: "mqttv5"), "-t", "rooms/kitchen/temp", "-m", "1", "-q", "1"], Timeout, cancellationToken: Ct);
        var hall = await ExternalTool.RunAsync("mosquitto_pub", [.. host.TlsArgs(device, version: "mqttv5"), "-t", "rooms/hall/temp", "-m", "1", "-q", "1"], Timeout, cancellationToken: Ct);

        Assert.True(kitchen.ExitCode == 0 && !kitchen.Output.Contains("Not authorized", StringComparison.Ordinal), kitchen.Output);
        Assert.Contains("Not authorized", hall.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Certificate_from_csr_with_common_name_variable()
    {
        var name = TrellisHost.Unique("cn");
        var dir = Path.Combine(host.DataDirectory, "csr-" + name);
        Directory.CreateDirectory(dir);
        var key = Path.Combine(dir, "device.key");
        var csr = Path.Combine(dir, "device.csr");
        var gen = await ExternalTool.RunAsync("openssl", ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", csr, "-subj", $"/CN={name}/O=Trellis Tests"], Timeout, cancellationToken: Ct);
        Assert.True(gen.ExitCode == 0, gen.Output);
        var created = await AwsAsync(["iot", "create-certificate-from-csr", "--set-as-active", "--certificate-signing-request", "file://" + csr]);
        using var json = JsonDocument.Parse(created);
        var certArn = json.RootElement.GetProperty("certificateArn").GetString()!;
        var certPath = Path.Combine(dir, "device.crt");
        await File.WriteAllTextAsync(certPath, json.RootElement.GetProperty("certificatePem").GetString(), Ct);
        var policyName = TrellisHost.Unique("pol");
        await AwsAsync(["iot", "create-policy", "--policy-name", policyName, "--policy-document", """
            {"Statement":[
              {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Certificate.Subject.CommonName}"},
              {"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:*:*:topic/org/${iot:Certificate.Subject.Organization}/${iot:Certificate.Subject.CommonName}"}]}
            """]);
        await AwsAsync(["iot", "attach-policy", "--policy-name", policyName, "--target", certArn]);
        var device = new ProvisionedDevice(name, certArn.Split('/')[^1], certArn, certPath, key);

        var own = await ExternalTool.RunAsync("mosquitto_pub", [.. host.TlsArgs(device, version: "mqttv5"), "-t", $"org/Trellis Tests/{name}", "-m", "1", "-q", "1"], Timeout, cancellationToken: Ct);
        var other = await ExternalTool.RunAsync("mosquitto_pub", [.. host.TlsArgs(device, version: "mqttv5"), "-t", "org/Trellis Tests/someone-else", "-m", "1", "-q", "1"], Timeout, cancellationToken: Ct);
        var wrongId = await ExternalTool.RunAsync("mosquitto_pub", [.. host.TlsArgs(device, clientId: name + "x", version: "mqttv5"), "-t", $"org/Trellis Tests/{name}", "-m", "1"], Timeout, cancellationToken: Ct);

        Assert.True(own.ExitCode == 0 && !own.Output.Contains("Not authorized", StringComparison.Ordinal), own.Output);
        Assert.Contains("Not authorized", other.Output, StringComparison.Ordinal);
        Assert.Contains("not autho", wrongId.Output, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task New_default_policy_version_applies_to_the_next_publish()
    {
        var policyName = TrellisHost.Unique("pol");
        var device = await host.ProvisionAsync(TrellisHost.Unique("dev"), policyName, Policies.PerThing, Ct);
        var before = await ExternalTool.RunAsync("mosquitto_pub", [.. host.TlsArgs(device, version: "mqttv5"), "-t", $"devices/{device.ThingName}/a", "-m", "1", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.DoesNotContain("Not authorized", before.Output, StringComparison.Ordinal);
        var v2 = """
            {"Statement":[
              {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
              {"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:*:*:topic/v2/${iot:Connection.Thing.ThingName}"}]}
            """;

        await AwsAsync(["iot", "create-policy-version", "--policy-name", policyName, "--policy-document", v2, "--set-as-default"]);
        var old = await ExternalTool.RunAsync("mosquitto_pub", [.. host.TlsArgs(device, version: "mqttv5"), "-t", $"devices/{device.ThingName}/a", "-m", "1", "-q", "1"], Timeout, cancellationToken: Ct);
        var newTopic = await ExternalTool.RunAsync("mosquitto_pub", [.. host.TlsArgs(device, version: "mqttv5"), "-t", $"v2/{device.ThingName}", "-m", "1", "-q", "1"], Timeout, cancellationToken: Ct);

        Assert.Contains("Not authorized", old.Output, StringComparison.Ordinal);
        Assert.True(newTopic.ExitCode == 0 && !newTopic.Output.Contains("Not authorized", StringComparison.Ordinal), newTopic.Output);
    }

    private async Task<string> AwsAsync(string[] args)
    {
        var result = await ExternalTool.RunAsync("aws", [.. args, "--endpoint-url", host.Endpoint, "--output", "json"], Timeout, host.AwsEnvironment, Ct);
        Assert.True(result.ExitCode == 0, string.Join(' ', args) + ": " + result.Output);
        return result.Stdout;
    }
}
