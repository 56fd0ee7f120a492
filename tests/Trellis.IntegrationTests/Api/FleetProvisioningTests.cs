using System.Buffers;
using System.Formats.Cbor;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using Trellis.Device;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary>
/// Fleet provisioning by claim: templates created with boto3, devices (MQTTnet through the SDK,
/// and mosquitto) that hold only a shared claim certificate get their own certificate and thing.
/// </summary>
[Collection(TrellisServerGroup.Name)]
public sealed class FleetProvisioningTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>The claim certificate may only use the provisioning topics.</summary>
    private const string ClaimPolicy = """
        {"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"iot:Connect","Resource":"*"},
          {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":["arn:aws:iot:*:*:topic/$aws/certificates/create/*","arn:aws:iot:*:*:topic/$aws/certificates/create-from-csr/*","arn:aws:iot:*:*:topic/$aws/provisioning-templates/*/provision/*"]},
          {"Effect":"Allow","Action":"iot:Subscribe","Resource":["arn:aws:iot:*:*:topicfilter/$aws/certificates/create/*","arn:aws:iot:*:*:topicfilter/$aws/certificates/create-from-csr/*","arn:aws:iot:*:*:topicfilter/$aws/provisioning-templates/*/provision/*"]}]}
        """;

    [Fact]
    public async Task Templates_are_managed_and_RegisterThing_applies_a_body_through_boto3()
    {
        var template = TrellisHost.Unique("tmpl");
        var thing = TrellisHost.Unique("reg");
        const string Body = """{"Parameters": {"Name": {"Type": "String"}}, "Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "Name"}}}}}""";
        var results = await host.IotCallsAsync(
        [
            ("create_provisioning_template", new { templateName = template, templateBody = Body, enabled = true, provisioningRoleArn = "arn:aws:iam::000000000000:role/p" }),
            ("update_provisioning_template", new { templateName = template, description = "second look", enabled = false }),
            ("list_provisioning_templates", new { }),
            ("create_provisioning_template_version", new { templateName = template, templateBody = Body.Replace("\"Name\"", "\"Thing\"", StringComparison.Ordinal), setAsDefault = false }),
            ("describe_provisioning_template_version", new { templateName = template, versionId = 2 }),
            ("delete_provisioning_template_version", new { templateName = template, versionId = 2 }),
            ("describe_provisioning_template", new { templateName = template }),
            ("delete_provisioning_template", new { templateName = template }),
            ("describe_provisioning_template", new { templateName = template }),
            ("register_thing", new { templateBody = Body, parameters = new { Name = thing } }),
            ("describe_thing", new { thingName = thing }),
        ], Ct);

        Assert.All(results[..8], r => Assert.True(r!["status"]!.GetValue<int>() == 200, r.ToJsonString()));
        var listed = results[2]!["body"]!["templates"]!.AsArray().Single(t => t!["templateName"]!.GetValue<string>() == template)!;
        Assert.Equal("second look", listed["description"]!.GetValue<string>());
        Assert.False(listed["enabled"]!.GetValue<bool>());
        Assert.Equal(2, results[4]!["body"]!["versionId"]!.GetValue<int>());
        Assert.False(results[4]!["body"]!["isDefaultVersion"]!.GetValue<bool>());
        Assert.Equal(1, results[6]!["body"]!["defaultVersionId"]!.GetValue<int>());
        Assert.Equal("ResourceNotFoundException", results[8]!["error"]!.GetValue<string>());
        Assert.True(results[9]!["status"]!.GetValue<int>() == 200, results[9]!.ToJsonString());
        Assert.Contains(thing, results[9]!["body"]!["resourceArns"]!["thing"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(thing, results[10]!["body"]!["thingName"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_device_provisions_itself_by_claim_and_reconnects_with_its_own_certificate()
    {
        var (template, group, _) = await CreateFleetTemplateAsync(hook: null);
        var claim = await CreateClaimAsync();
        var serial = TrellisHost.Unique("SN");
        await using var claimDevice = await TrellisDevice.ConnectAsync(ClaimOptions(claim, TrellisHost.Unique("claim")), Ct);
        using var provisioning = new FleetProvisioningClient(claimDevice);

        var certificate = await provisioning.CreateKeysAndCertificateAsync(Ct);
        Assert.NotNull(certificate.PrivateKeyPem);
        Assert.Equal("PENDING_ACTIVATION", await StatusAsync(certificate.CertificateId));

        var thing = await provisioning.RegisterThingAsync(template, certificate.OwnershipToken, new Dictionary<string, string> { ["SerialNumber"] = serial }, Ct);
        Assert.Equal($"dev-{serial}", thing.ThingName);
        Assert.Equal($"devices/dev-{serial}/telemetry", thing.DeviceConfiguration["telemetryTopic"]);
        Assert.Equal("ACTIVE", await StatusAsync(certificate.CertificateId));
        var checks = await host.IotCallsAsync([("describe_thing", new { thingName = thing.ThingName }), ("list_things_in_thing_group", new { thingGroupName = group })], Ct);
        Assert.Equal(serial, checks[0]!["body"]!["attributes"]!["serial"]!.GetValue<string>());
        Assert.Equal("m1", checks[0]!["body"]!["attributes"]!["model"]!.GetValue<string>());
        Assert.Contains(thing.ThingName, checks[1]!["body"]!["things"]!.AsArray().Select(t => t!.GetValue<string>()));

        // An ownership token is spent once.
        var reused = await Assert.ThrowsAsync<ProvisioningRejectedException>(() => provisioning.RegisterThingAsync(template, certificate.OwnershipToken, new Dictionary<string, string> { ["SerialNumber"] = serial }, Ct));
        Assert.Equal(400, reused.StatusCode);
        Assert.Equal("InvalidCertificateOwnershipToken", reused.ErrorCode);

        // The device reconnects with its own certificate, under the template's per-thing policy.
        var own = new DeviceOptions
        {
            Host = "127.0.0.1",
            Port = host.MqttsPort,
            ThingName = thing.ThingName!,
            Certificate = X509Certificate2.CreateFromPem(certificate.CertificatePem, certificate.PrivateKeyPem),
            CaCertificate = X509CertificateLoader.LoadCertificateFromFile(host.CaPath),
        };
        await using (var device = await TrellisDevice.ConnectAsync(own, Ct))
        {
            await device.PublishAsync(thing.DeviceConfiguration["telemetryTopic"], "{\"t\":21}"u8.ToArray(), 1, Ct);
        }

        // A device that keeps its key: a certificate from its CSR, without a private key in the reply.
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var csr = new CertificateRequest("CN=from-csr", key, HashAlgorithmName.SHA256).CreateSigningRequestPem();
        var fromCsr = await provisioning.CreateCertificateFromCsrAsync(csr, Ct);
        Assert.Null(fromCsr.PrivateKeyPem);
        var second = await provisioning.RegisterThingAsync(template, fromCsr.OwnershipToken, new Dictionary<string, string> { ["SerialNumber"] = serial + "b", ["Model"] = "m1" }, Ct);
        Assert.Equal($"dev-{serial}b", second.ThingName);

        // A parameter without value or Default, and a template that does not exist.
        var another = await provisioning.CreateKeysAndCertificateAsync(Ct);
        var missing = await Assert.ThrowsAsync<ProvisioningRejectedException>(() => provisioning.RegisterThingAsync(template, another.OwnershipToken, null, Ct));
        Assert.Equal("InvalidParameters", missing.ErrorCode);
        Assert.Contains("SerialNumber", missing.Reason, StringComparison.Ordinal);
        var unknown = await Assert.ThrowsAsync<ProvisioningRejectedException>(() => provisioning.RegisterThingAsync("no-such-template", another.OwnershipToken, null, Ct));
        Assert.Equal(404, unknown.StatusCode);
        Assert.Equal("PENDING_ACTIVATION", await StatusAsync(another.CertificateId));
    }

    [Fact]
    public async Task Mosquitto_rr_creates_keys_and_registers_a_thing_with_the_claim_certificate()
    {
        // The whole flow with Debian's mosquitto_rr, as a device without AWS's SDK would do it.
        var (template, _, _) = await CreateFleetTemplateAsync(hook: null);
        var claim = await CreateClaimAsync();
        var serial = TrellisHost.Unique("RR");
        List<string> claimArgs = ["-h", "127.0.0.1", "-p", host.MqttsPort.ToString(CultureInfo.InvariantCulture), "--cafile", host.CaPath, "--cert", claim.CertPath, "--key", claim.KeyPath, "-V", "mqttv5"];
        var created = await ExternalTool.RunCheckedAsync("mosquitto_rr", [.. claimArgs, "-i", TrellisHost.Unique("rr"), "-t", "$aws/certificates/create/json", "-e", "$aws/certificates/create/json/accepted", "-m", "{}", "-W", "10"], Timeout, cancellationToken: Ct);
        var keys = JsonNode.Parse(created.Stdout)!;
        var request = new JsonObject
        {
            ["certificateOwnershipToken"] = keys["certificateOwnershipToken"]!.GetValue<string>(),
            ["parameters"] = new JsonObject { ["SerialNumber"] = serial },
        };
        var provision = $"$aws/provisioning-templates/{template}/provision/json";
        var registered = await ExternalTool.RunCheckedAsync("mosquitto_rr", [.. claimArgs, "-i", TrellisHost.Unique("rr"), "-t", provision, "-e", provision + "/accepted", "-m", request.ToJsonString(), "-W", "10"], Timeout, cancellationToken: Ct);
        var answer = JsonNode.Parse(registered.Stdout)!;
        Assert.Equal($"dev-{serial}", answer["thingName"]!.GetValue<string>());
        Assert.Equal("ACTIVE", await StatusAsync(keys["certificateId"]!.GetValue<string>()));

        // The new certificate connects as the new thing.
        var dir = Directory.CreateDirectory(Path.Combine(host.DataDirectory, TrellisHost.Unique("rrdev"))).FullName;
        await File.WriteAllTextAsync(Path.Combine(dir, "cert.pem"), keys["certificatePem"]!.GetValue<string>(), Ct);
        await File.WriteAllTextAsync(Path.Combine(dir, "key.pem"), keys["privateKey"]!.GetValue<string>(), Ct);
        await ExternalTool.RunCheckedAsync("mosquitto_pub", ["-h", "127.0.0.1", "-p", host.MqttsPort.ToString(CultureInfo.InvariantCulture), "--cafile", host.CaPath, "--cert", Path.Combine(dir, "cert.pem"), "--key", Path.Combine(dir, "key.pem"), "-i", $"dev-{serial}", "-t", $"devices/dev-{serial}/telemetry", "-m", "{}", "-q", "1"], Timeout, cancellationToken: Ct);
    }

    [Fact]
    public async Task The_claim_certificate_cannot_use_ordinary_topics_and_replies_reach_only_the_requester()
    {
        var claim = await CreateClaimAsync();
        var port = host.MqttsPort.ToString(CultureInfo.InvariantCulture);
        List<string> claimArgs = ["-h", "127.0.0.1", "-p", port, "--cafile", host.CaPath, "--cert", claim.CertPath, "--key", claim.KeyPath, "-V", "mqttv5"];

        var ordinary = await ExternalTool.RunAsync("mosquitto_pub", [.. claimArgs, "-i", TrellisHost.Unique("c"), "-t", "devices/anything/telemetry", "-m", "x", "-q", "1", "-d"], Timeout, cancellationToken: Ct);
        Assert.Contains("RC:135", ordinary.Output, StringComparison.Ordinal);

        // Another holder of the same claim certificate listens on the reply topic: it must not see a private key meant for someone else.
        var eavesdropper = TrellisHost.Unique("eve");
        using var listening = ExternalTool.StartBackground("mosquitto_sub", [.. claimArgs, "-i", eavesdropper, "-t", "$aws/certificates/create/json/accepted", "-q", "1"]);
        await host.WaitSubscribedAsync(eavesdropper, listening);
        var reply = await ExternalTool.RunAsync("mosquitto_rr", [.. claimArgs, "-i", TrellisHost.Unique("req"), "-t", "$aws/certificates/create/json", "-e", "$aws/certificates/create/json/accepted", "-m", "", "-W", "10"], Timeout, cancellationToken: Ct);
        Assert.True(reply.ExitCode == 0, reply.Output);
        Assert.Contains("PRIVATE KEY", JsonNode.Parse(reply.Stdout)!["privateKey"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.False(await listening.WaitForLineAsync(_ => true, TimeSpan.FromSeconds(1), Ct), "another client received the reply");

        // Bad payloads are rejected with a reason.
        var rejected = await ExternalTool.RunAsync("mosquitto_rr", [.. claimArgs, "-i", TrellisHost.Unique("req"), "-t", "$aws/provisioning-templates/any/provision/json", "-e", "$aws/provisioning-templates/any/provision/json/rejected", "-m", "not json", "-W", "10"], Timeout, cancellationToken: Ct);
        Assert.True(rejected.ExitCode == 0, rejected.Output);
        var body = JsonNode.Parse(rejected.Stdout)!;
        Assert.Equal(400, body["statusCode"]!.GetValue<int>());
        Assert.Equal("InvalidPayload", body["errorCode"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_pre_provisioning_webhook_can_refuse_a_device_or_override_its_parameters()
    {
        using var hook = new HookReceiver();
        var (template, _, _) = await CreateFleetTemplateAsync(hook.Url);
        var claim = await CreateClaimAsync();
        var clientId = TrellisHost.Unique("claim");
        await using var claimDevice = await TrellisDevice.ConnectAsync(ClaimOptions(claim, clientId), Ct);
        using var provisioning = new FleetProvisioningClient(claimDevice);

        var refusedCertificate = await provisioning.CreateKeysAndCertificateAsync(Ct);
        var refused = await Assert.ThrowsAsync<ProvisioningRejectedException>(() => provisioning.RegisterThingAsync(template, refusedCertificate.OwnershipToken, new Dictionary<string, string> { ["SerialNumber"] = "BLOCKED" }, Ct));
        Assert.Equal(403, refused.StatusCode);
        Assert.Contains("refused", refused.Reason, StringComparison.Ordinal);
        Assert.Equal("PENDING_ACTIVATION", await StatusAsync(refusedCertificate.CertificateId));
        var request = hook.Requests.Single();
        Assert.Equal(claim.Id, request["claimCertificateId"]!.GetValue<string>());
        Assert.Equal(refusedCertificate.CertificateId, request["certificateId"]!.GetValue<string>());
        Assert.Equal(clientId, request["clientId"]!.GetValue<string>());
        Assert.Equal("BLOCKED", request["parameters"]!["SerialNumber"]!.GetValue<string>());

        // Allowed, with the hook choosing the model: the override reaches the template.
        var serial = TrellisHost.Unique("SN");
        var allowed = await provisioning.CreateKeysAndCertificateAsync(Ct);
        var thing = await provisioning.RegisterThingAsync(template, allowed.OwnershipToken, new Dictionary<string, string> { ["SerialNumber"] = serial }, Ct);
        var described = await host.IotCallsAsync([("describe_thing", new { thingName = thing.ThingName })], Ct);
        Assert.Equal("m2", described[0]!["body"]!["attributes"]!["model"]!.GetValue<string>());

        // A webhook that is down refuses too: nothing is provisioned on a failure.
        hook.Dispose();
        var down = await provisioning.CreateKeysAndCertificateAsync(Ct);
        var failed = await Assert.ThrowsAsync<ProvisioningRejectedException>(() => provisioning.RegisterThingAsync(template, down.OwnershipToken, new Dictionary<string, string> { ["SerialNumber"] = serial + "x" }, Ct));
        Assert.Equal(403, failed.StatusCode);
        Assert.Contains("hook failed", failed.Reason, StringComparison.Ordinal);
        Assert.Equal(404, (await host.IotCallsAsync([("describe_thing", new { thingName = $"dev-{serial}x" })], Ct))[0]!["status"]!.GetValue<int>());
    }

    [Fact]
    public async Task The_cbor_topics_serve_the_same_api_in_cbor()
    {
        var (template, _, _) = await CreateFleetTemplateAsync(hook: null);
        var claim = await CreateClaimAsync();
        await using var device = await TrellisDevice.ConnectAsync(ClaimOptions(claim, TrellisHost.Unique("cbor")), Ct);
        var replies = System.Threading.Channels.Channel.CreateUnbounded<(string Topic, byte[] Payload)>();
        device.Mqtt.ApplicationMessageReceivedAsync += e =>
        {
            replies.Writer.TryWrite((e.ApplicationMessage.Topic, e.ApplicationMessage.Payload.ToArray()));
            return Task.CompletedTask;
        };
        var provision = $"$aws/provisioning-templates/{template}/provision/cbor";
        await device.Mqtt.SubscribeAsync(new MQTTnet.MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter("$aws/certificates/create-from-csr/cbor/+").WithTopicFilter(provision + "/+").Build(), Ct);

        async Task<(string Topic, Dictionary<string, object> Body)> RequestAsync(string topic, byte[] payload)
        {
            await device.Mqtt.PublishAsync(new MQTTnet.MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(payload)
                .WithQualityOfServiceLevel(MQTTnet.Protocol.MqttQualityOfServiceLevel.AtLeastOnce).Build(), Ct);
            var (replyTopic, reply) = await replies.Reader.ReadAsync(Ct).AsTask().WaitAsync(Timeout, Ct);
            return (replyTopic, ReadMap(new CborReader(reply)));
        }

        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var csr = new CertificateRequest("CN=cbor-device", key, HashAlgorithmName.SHA256).CreateSigningRequestPem();
        var created = await RequestAsync("$aws/certificates/create-from-csr/cbor", WriteMap(("certificateSigningRequest", csr)));
        Assert.EndsWith("/accepted", created.Topic, StringComparison.Ordinal);
        Assert.Contains("BEGIN CERTIFICATE", (string)created.Body["certificatePem"], StringComparison.Ordinal);

        var serial = TrellisHost.Unique("C");
        var writer = new CborWriter();
        writer.WriteStartMap(2);
        writer.WriteTextString("certificateOwnershipToken");
        writer.WriteTextString((string)created.Body["certificateOwnershipToken"]);
        writer.WriteTextString("parameters");
        writer.WriteStartMap(1);
        writer.WriteTextString("SerialNumber");
        writer.WriteTextString(serial);
        writer.WriteEndMap();
        writer.WriteEndMap();
        var registered = await RequestAsync(provision, writer.Encode());
        Assert.EndsWith("/accepted", registered.Topic, StringComparison.Ordinal);
        Assert.Equal($"dev-{serial}", (string)registered.Body["thingName"]);
        Assert.Equal($"devices/dev-{serial}/telemetry", (string)((Dictionary<string, object>)registered.Body["deviceConfiguration"])["telemetryTopic"]);

        // Not CBOR: refused, in CBOR, with the reason.
        var broken = await RequestAsync(provision, [0xbf, 0x61]);
        Assert.EndsWith("/rejected", broken.Topic, StringComparison.Ordinal);
        Assert.Equal(400L, (long)(ulong)broken.Body["statusCode"]);
        Assert.Equal("InvalidPayload", (string)broken.Body["errorCode"]);
    }

    private static byte[] WriteMap(params (string Key, string Value)[] entries)
    {
        var writer = new CborWriter();
        writer.WriteStartMap(entries.Length);
        foreach (var (k, v) in entries)
        {
            writer.WriteTextString(k);
            writer.WriteTextString(v);
        }

        writer.WriteEndMap();
        return writer.Encode();
    }

    private static Dictionary<string, object> ReadMap(CborReader reader)
    {
        var map = new Dictionary<string, object>(StringComparer.Ordinal);
        reader.ReadStartMap();
        while (reader.PeekState() != CborReaderState.EndMap)
        {
            var key = reader.ReadTextString();
            map[key] = reader.PeekState() switch
            {
                CborReaderState.StartMap => ReadMap(reader),
                CborReaderState.UnsignedInteger => reader.ReadUInt64(),
                _ => reader.ReadTextString(),
            };
        }

        reader.ReadEndMap();
        return map;
    }

    [Fact]
    public async Task Template_mistakes_are_refused_when_saved_with_the_place_they_are_in()
    {
        var name = TrellisHost.Unique("bad");
        static object Create(string templateName, string templateBody, object? hook = null) => hook is null
            ? new { templateName, templateBody, provisioningRoleArn = "arn:aws:iam::000000000000:role/p", enabled = true }
            : new { templateName, templateBody, provisioningRoleArn = "arn:aws:iam::000000000000:role/p", enabled = true, preProvisioningHook = hook };
        const string unknownParameter = """{"Parameters":{"Serial":{"Type":"String"}},"Resources":{"thing":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Ref":"SerialNumber"}}}}}""";
        const string unknownFunction = """{"Resources":{"thing":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Fn::Magic":["a"]}}}}}""";
        const string unknownType = """{"Resources":{"bucket":{"Type":"AWS::S3::Bucket","Properties":{}}}}""";
        const string good = """{"Parameters":{"SerialNumber":{"Type":"String"}},"Resources":{"thing":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Ref":"SerialNumber"}}}}}""";
        var results = await host.IotCallsAsync(
        [
            ("create_provisioning_template", Create(name, unknownParameter)),
            ("create_provisioning_template", Create(name, unknownFunction)),
            ("create_provisioning_template", Create(name, unknownType)),
            ("create_provisioning_template", Create(name, "{not json")),
            ("create_provisioning_template", Create(name, good, new { targetArn = "arn:aws:lambda:us-east-1:000000000000:function:check" })),
            ("create_provisioning_template", Create(name, good)),
            ("create_provisioning_template", Create(name, good)),
        ], Ct);
        Assert.All(results[..5], r => Assert.Equal("InvalidRequestException", r!["error"]!.GetValue<string>()));
        Assert.Contains("Resources.thing.Properties.ThingName.Ref refers to 'SerialNumber', which is not declared", results[0]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("unknown intrinsic function Fn::Magic", results[1]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("Resources.bucket.Type", results[2]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("not valid JSON", results[3]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("not an http(s) URL", results[4]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(200, results[5]!["status"]!.GetValue<int>());
        Assert.Equal("ResourceAlreadyExistsException", results[6]!["error"]!.GetValue<string>());

        // Versions: at most five; the default cannot be deleted; a new default is used.
        var versions = await host.IotCallsAsync(
        [
            ("create_provisioning_template_version", new { templateName = name, templateBody = good }),
            ("create_provisioning_template_version", new { templateName = name, templateBody = good }),
            ("create_provisioning_template_version", new { templateName = name, templateBody = good }),
            ("create_provisioning_template_version", new { templateName = name, templateBody = good, setAsDefault = true }),
            ("create_provisioning_template_version", new { templateName = name, templateBody = good }),
            ("create_provisioning_template_version", new { templateName = name, templateBody = unknownParameter }),
            ("delete_provisioning_template_version", new { templateName = name, versionId = 5 }),
            ("delete_provisioning_template_version", new { templateName = name, versionId = 2 }),
            ("list_provisioning_template_versions", new { templateName = name }),
            ("describe_provisioning_template", new { templateName = name }),
        ], Ct);
        Assert.All(versions[..4], r => Assert.Equal(200, r!["status"]!.GetValue<int>()));
        Assert.True(versions[3]!["body"]!["isDefaultVersion"]!.GetValue<bool>());
        Assert.Equal("VersionsLimitExceededException", versions[4]!["error"]!.GetValue<string>());
        Assert.Equal("InvalidRequestException", versions[5]!["error"]!.GetValue<string>());
        Assert.Equal("DeleteConflictException", versions[6]!["error"]!.GetValue<string>());
        Assert.Equal(200, versions[7]!["status"]!.GetValue<int>());
        Assert.Equal(4, versions[8]!["body"]!["versions"]!.AsArray().Count);
        Assert.Equal(5, versions[9]!["body"]!["defaultVersionId"]!.GetValue<int>());
    }

    /// <summary>A FLEET_PROVISIONING template: thing dev-{SerialNumber} in a group, the per-thing policy, a telemetry topic as device configuration.</summary>
    private async Task<(string Template, string Group, string Policy)> CreateFleetTemplateAsync(string? hook)
    {
        var template = TrellisHost.Unique("fleet");
        var group = TrellisHost.Unique("fleetgrp");
        var policy = TrellisHost.Unique("fleetpol");
        var body = """
            {"Parameters": {"SerialNumber": {"Type": "String"}, "Model": {"Type": "String", "Default": "m1"}, "AWS::IoT::Certificate::Id": {"Type": "String"}},
             "Mappings": {"Models": {"m1": {"Group": "GROUP"}, "m2": {"Group": "GROUP"}}},
             "Resources": {
              "thing": {"Type": "AWS::IoT::Thing", "OverrideSettings": {"AttributePayload": "MERGE", "ThingGroups": "MERGE"},
                "Properties": {"ThingName": {"Fn::Join": ["", ["dev-", {"Ref": "SerialNumber"}]]}, "AttributePayload": {"serial": {"Ref": "SerialNumber"}, "model": {"Ref": "Model"}},
                  "ThingGroups": [{"Fn::FindInMap": ["Models", {"Ref": "Model"}, "Group"]}]}},
              "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "Active"}},
              "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "POLICY"}}},
             "DeviceConfiguration": {"telemetryTopic": {"Fn::Sub": "devices/dev-${SerialNumber}/telemetry"}}}
            """.Replace("GROUP", group, StringComparison.Ordinal).Replace("POLICY", policy, StringComparison.Ordinal);
        object create = hook is null
            ? new { templateName = template, templateBody = body, enabled = true, provisioningRoleArn = "arn:aws:iam::000000000000:role/fleet" }
            : new { templateName = template, templateBody = body, enabled = true, provisioningRoleArn = "arn:aws:iam::000000000000:role/fleet", preProvisioningHook = new { targetArn = hook } };
        var results = await host.IotCallsAsync(
        [
            ("create_thing_group", new { thingGroupName = group }),
            ("create_policy", new { policyName = policy, policyDocument = Policies.PerThing }),
            ("create_provisioning_template", create),
        ], Ct);
        Assert.All(results, r => Assert.True(r!["status"]!.GetValue<int>() == 200, r.ToJsonString()));
        return (template, group, policy);
    }

    private Task<(string Id, string CertPath, string KeyPath)> CreateClaimAsync() => host.CreateClaimAsync(ClaimPolicy, Ct);

    private DeviceOptions ClaimOptions((string Id, string CertPath, string KeyPath) claim, string clientId) =>
        DeviceOptions.FromPemFiles("127.0.0.1", host.MqttsPort, clientId, claim.CertPath, claim.KeyPath, host.CaPath);

    private async Task<string> StatusAsync(string certificateId) =>
        (await host.IotCallsAsync([("describe_certificate", new { certificateId })], Ct))[0]!["body"]!["certificateDescription"]!["status"]!.GetValue<string>();

    /// <summary>A real HTTP webhook on loopback: refuses serial BLOCKED, sets Model to m2 for everyone else.</summary>
    private sealed class HookReceiver : IDisposable
    {
        private readonly HttpListener _listener = new();
        private readonly Task _loop;

        public HookReceiver()
        {
            var port = HttpReceiver.FreePort();
            Url = $"http://127.0.0.1:{port}/hook/";
            _listener.Prefixes.Add(Url);
            _listener.Start();
            _loop = Task.Run(ServeAsync);
        }

        public string Url { get; }

        public List<JsonNode> Requests { get; } = [];

        public void Dispose()
        {
            if (_listener.IsListening)
            {
                _listener.Stop();
                _listener.Close();
            }
        }

        private async Task ServeAsync()
        {
            while (_listener.IsListening)
            {
                HttpListenerContext context;
                try
                {
                    context = await _listener.GetContextAsync();
                }
                catch (Exception e) when (e is HttpListenerException or ObjectDisposedException)
                {
                    return;
                }

                using var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8);
                var request = JsonNode.Parse(await reader.ReadToEndAsync())!;
                lock (Requests)
                {
                    Requests.Add(request);
                }

                var answer = request["parameters"]?["SerialNumber"]?.GetValue<string>() == "BLOCKED"
                    ? """{"allowProvisioning": false}"""
                    : """{"allowProvisioning": true, "parameterOverrides": {"Model": "m2"}}""";
                var bytes = Encoding.UTF8.GetBytes(answer);
                context.Response.ContentType = "application/json";
                await context.Response.OutputStream.WriteAsync(bytes);
                context.Response.Close();
            }
        }
    }
}
