using System.Globalization;
using System.Text.Json.Nodes;
using Trellis.Device;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary>
/// Bring your own CA: a CA made with openssl is registered with the AWS CLI and boto3, and devices
/// whose certificates it signed connect with mosquitto and MQTTnet: just in time provisioned by a
/// template, or waiting as PENDING_ACTIVATION without one.
/// </summary>
[Collection(TrellisServerGroup.Name)]
public sealed class ByoCaTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>A JITP template: the thing is named after the certificate's CN, the policy allows dt/{thing}/*.</summary>
    private static string JitpTemplate => """
        {"Parameters": {"AWS::IoT::Certificate::CommonName": {"Type": "String"}, "AWS::IoT::Certificate::Country": {"Type": "String"}, "AWS::IoT::Certificate::Id": {"Type": "String"}},
         "Resources": {
          "thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"}, "AttributePayload": {"version": "v1", "country": {"Ref": "AWS::IoT::Certificate::Country"}}}},
          "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"}},
          "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"iot:Connect\",\"Resource\":\"arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}\"},{\"Effect\":\"Allow\",\"Action\":\"iot:Publish\",\"Resource\":\"arn:aws:iot:*:*:topic/dt/${iot:Connection.Thing.ThingName}/*\"}]}"}}}}
        """;

    [Fact]
    public async Task Registering_a_CA_needs_a_verification_certificate_signed_by_its_key()
    {
        var dir = Path.Combine(host.DataDirectory, TrellisHost.Unique("ca"));
        var ca = await OpensslCa.CreateAsync(dir, "acme-root", Ct);
        var other = await OpensslCa.CreateAsync(dir, "other-root", Ct);
        var code = (await AwsAsync("get-registration-code"))["registrationCode"]!.GetValue<string>();
        Assert.Matches("^[0-9a-f]{64}$", code);

        var (wrongName, _) = await ca.IssueAsync("wrong-cn", "/CN=not-the-code", Ct);
        var (wrongKey, _) = await other.IssueAsync("wrong-key", $"/CN={code}", Ct);
        var (verification, _) = await ca.IssueAsync("verification", $"/CN={code}", Ct);
        var (device, _) = await ca.IssueAsync("device", "/CN=device", Ct);

        await AwsFailsAsync("InvalidRequestException", "verificationCertificate is required", "register-ca-certificate", "--ca-certificate", $"file://{ca.CertPath}");
        await AwsFailsAsync("RegistrationCodeValidationException", "not-the-code", "register-ca-certificate", "--ca-certificate", $"file://{ca.CertPath}", "--verification-certificate", $"file://{wrongName}");
        await AwsFailsAsync("CertificateValidationException", "not signed by the CA", "register-ca-certificate", "--ca-certificate", $"file://{ca.CertPath}", "--verification-certificate", $"file://{wrongKey}");
        await AwsFailsAsync("CertificateValidationException", "not a CA certificate", "register-ca-certificate", "--ca-certificate", $"file://{device}", "--verification-certificate", $"file://{verification}");

        var registered = await AwsAsync("register-ca-certificate", "--ca-certificate", $"file://{ca.CertPath}", "--verification-certificate", $"file://{verification}", "--set-as-active", "--allow-auto-registration");
        var id = registered["certificateId"]!.GetValue<string>();
        Assert.EndsWith($":cacert/{id}", registered["certificateArn"]!.GetValue<string>(), StringComparison.Ordinal);
        await AwsFailsAsync("ResourceAlreadyExistsException", id, "register-ca-certificate", "--ca-certificate", $"file://{ca.CertPath}", "--verification-certificate", $"file://{verification}");

        var described = (await AwsAsync("describe-ca-certificate", "--certificate-id", id))["certificateDescription"]!;
        Assert.Equal("ACTIVE", described["status"]!.GetValue<string>());
        Assert.Equal("ENABLE", described["autoRegistrationStatus"]!.GetValue<string>());
        Assert.Equal("DEFAULT", described["certificateMode"]!.GetValue<string>());
        var listed = await AwsAsync("list-ca-certificates");
        Assert.Contains(listed["certificates"]!.AsArray(), c => c!["certificateId"]!.GetValue<string>() == id);

        // An ACTIVE CA cannot be deleted; an INACTIVE one can.
        await AwsFailsAsync("CertificateStateException", "INACTIVE", "delete-ca-certificate", "--certificate-id", id);
        await AwsAsync("update-ca-certificate", "--certificate-id", id, "--new-status", "INACTIVE");
        await AwsAsync("delete-ca-certificate", "--certificate-id", id);
        await AwsFailsAsync("ResourceNotFoundException", id, "describe-ca-certificate", "--certificate-id", id);

        // Trusting CAs is for admins: an operator key gets a 403 naming the permission.
        var user = await host.SignedRequestAsync("POST", "/api/users", $$"""{"name":"{{TrellisHost.Unique("op")}}","role":"operator"}""", Ct);
        var key = (user["body"]!["accessKeyId"]!.GetValue<string>(), user["body"]!["secretAccessKey"]!.GetValue<string>());
        var denied = await host.IotCallsAsync([("get_registration_code", new { })], Ct, key);
        Assert.Equal(403, denied[0]!["status"]!.GetValue<int>());
        Assert.Contains("iot:GetRegistrationCode", denied[0]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Jitp_creates_the_thing_activates_the_certificate_and_attaches_the_policy_on_first_connect()
    {
        var template = TrellisHost.Unique("jitp");
        var created = await host.IotCallsAsync([("create_provisioning_template", new
        {
            templateName = template, type = "JITP", enabled = true, templateBody = JitpTemplate, provisioningRoleArn = "arn:aws:iam::000000000000:role/jitp",
        })], Ct);
        Assert.Equal(200, created[0]!["status"]!.GetValue<int>());
        var (ca, caId) = await RegisterCaAsync(new { templateName = template });
        var thing = TrellisHost.Unique("sensor");
        var (cert, key) = await ca.IssueAsync(thing, $"/CN={thing}/O=Acme/C=DE", Ct);

        // The first connect succeeds: the template ran inside the CONNECT (AWS drops this first connection; Trellis does not).
        var options = DeviceOptions.FromPemFiles("127.0.0.1", host.MqttsPort, thing, cert, key, host.CaPath);
        await using (var device = await TrellisDevice.ConnectAsync(options, Ct))
        {
            await device.PublishAsync($"dt/{thing}/temp", "21.5"u8.ToArray(), 1, Ct);
        }

        var results = await host.IotCallsAsync([("describe_thing", new { thingName = thing }), ("list_thing_principals", new { thingName = thing })], Ct);
        Assert.Equal("DE", results[0]!["body"]!["attributes"]!["country"]!.GetValue<string>());
        var certificateArn = results[1]!["body"]!["principals"]![0]!.GetValue<string>();
        var certificateId = certificateArn[(certificateArn.LastIndexOf('/') + 1)..];
        var description = (await host.IotCallsAsync([("describe_certificate", new { certificateId })], Ct))[0]!["body"]!["certificateDescription"]!;
        Assert.Equal("ACTIVE", description["status"]!.GetValue<string>());
        Assert.Equal(caId, description["caCertificateId"]!.GetValue<string>());

        // The template's policy applies: dt/{thing}/… only (MQTT 5 PUBACK 0x87 elsewhere).
        List<string> args = ["-h", "127.0.0.1", "-p", host.MqttsPort.ToString(CultureInfo.InvariantCulture), "--cafile", host.CaPath, "--cert", cert, "--key", key, "-i", thing, "-V", "mqttv5", "-q", "1", "-d"];
        var allowed = await ExternalTool.RunAsync("mosquitto_pub", [.. args, "-t", $"dt/{thing}/temp", "-m", "22"], Timeout, cancellationToken: Ct);
        Assert.True(allowed.ExitCode == 0, allowed.Output);
        var denied = await ExternalTool.RunAsync("mosquitto_pub", [.. args, "-t", "elsewhere/x", "-m", "22"], Timeout, cancellationToken: Ct);
        Assert.Contains("RC:135", denied.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_a_template_a_new_certificate_waits_as_pending_activation_and_is_announced()
    {
        var (ca, caId) = await RegisterCaAsync(null);
        var thing = TrellisHost.Unique("pend");
        var (cert, key) = await ca.IssueAsync(thing, $"/CN={thing}", Ct);
        var admin = TrellisHost.Unique("events");
        using var events = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(admin), "-t", $"$aws/events/certificates/registered/{caId}", "-q", "1"]);
        await host.WaitSubscribedAsync(admin, events);

        List<string> args = ["-h", "127.0.0.1", "-p", host.MqttsPort.ToString(CultureInfo.InvariantCulture), "--cafile", host.CaPath, "--cert", cert, "--key", key, "-i", thing, "-t", "x", "-m", "x"];
        var refused = await ExternalTool.RunAsync("mosquitto_pub", [.. args, "-V", "mqttv5"], Timeout, cancellationToken: Ct);
        Assert.Contains("Not authorized", refused.Output, StringComparison.Ordinal);
        Assert.True(await events.WaitForLineAsync(l => l.Contains("PENDING_ACTIVATION", StringComparison.Ordinal) && l.Contains(caId, StringComparison.Ordinal), Timeout, Ct), "no registration event: " + events.Stderr);
        var byCa = await host.IotCallsAsync([("list_certificates_by_ca", new { caCertificateId = caId })], Ct);
        var pending = byCa[0]!["body"]!["certificates"]![0]!;
        Assert.Equal("PENDING_ACTIVATION", pending["status"]!.GetValue<string>());

        // The operator activates it and gives it a thing and a policy: the device connects.
        var certificateId = pending["certificateId"]!.GetValue<string>();
        var policy = TrellisHost.Unique("pendpol");
        var setup = await host.IotCallsAsync(
        [
            ("update_certificate", new { certificateId, newStatus = "ACTIVE" }),
            ("create_thing", new { thingName = thing }),
            ("attach_thing_principal", new { thingName = thing, principal = pending["certificateArn"]!.GetValue<string>() }),
            ("create_policy", new { policyName = policy, policyDocument = Policies.PerThing }),
            ("attach_policy", new { policyName = policy, target = pending["certificateArn"]!.GetValue<string>() }),
        ], Ct);
        Assert.All(setup, r => Assert.Equal(200, r!["status"]!.GetValue<int>()));
        var connected = await ExternalTool.RunAsync("mosquitto_pub", ["-h", "127.0.0.1", "-p", args[3], "--cafile", host.CaPath, "--cert", cert, "--key", key, "-i", thing, "-t", $"devices/{thing}/x", "-m", "x", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(connected.ExitCode == 0, connected.Output);

        // With auto-registration off, an unknown certificate is refused and not registered.
        Assert.Equal(200, (await host.IotCallsAsync([("update_ca_certificate", new { certificateId = caId, newAutoRegistrationStatus = "DISABLE" })], Ct))[0]!["status"]!.GetValue<int>());
        var (otherCert, otherKey) = await ca.IssueAsync("late", $"/CN={TrellisHost.Unique("late")}", Ct);
        var late = await ExternalTool.RunAsync("mosquitto_pub", ["-h", "127.0.0.1", "-p", args[3], "--cafile", host.CaPath, "--cert", otherCert, "--key", otherKey, "-i", "late", "-t", "x", "-m", "x", "-V", "mqttv5"], Timeout, cancellationToken: Ct);
        Assert.Contains("Not authorized", late.Output, StringComparison.Ordinal);
        var stillOne = await host.IotCallsAsync([("list_certificates_by_ca", new { caCertificateId = caId })], Ct);
        Assert.Single(stillOne[0]!["body"]!["certificates"]!.AsArray());
    }

    [Fact]
    public async Task Certificates_register_with_their_CA_or_without_one()
    {
        var (ca, caId) = await RegisterCaAsync(null);
        var dir = Path.Combine(host.DataDirectory, TrellisHost.Unique("reg"));
        var stranger = await OpensslCa.CreateAsync(dir, "stranger", Ct);
        var (signed, _) = await ca.IssueAsync("signed", "/CN=signed", Ct);
        var (foreign, _) = await stranger.IssueAsync("foreign", "/CN=foreign", Ct);
        var thing = TrellisHost.Unique("selfie");
        var (selfSigned, selfKey) = await OpensslCa.SelfSignedAsync(dir, "self", $"/CN={thing}", Ct);
        var (unregistered, unregisteredKey) = await OpensslCa.SelfSignedAsync(dir, "unregistered", "/CN=nobody", Ct);

        var results = await host.IotCallsAsync(
        [
            ("register_certificate", new { certificatePem = await File.ReadAllTextAsync(signed, Ct), caCertificatePem = ca.Pem, setAsActive = true }),
            ("register_certificate", new { certificatePem = await File.ReadAllTextAsync(foreign, Ct) }),
            ("register_certificate_without_ca", new { certificatePem = await File.ReadAllTextAsync(selfSigned, Ct) }),
            ("register_certificate_without_ca", new { certificatePem = await File.ReadAllTextAsync(selfSigned, Ct) }),
            ("register_certificate_without_ca", new { certificatePem = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----" }),
        ], Ct);
        Assert.Equal(200, results[0]!["status"]!.GetValue<int>());
        var signedId = results[0]!["body"]!["certificateId"]!.GetValue<string>();
        Assert.Equal("CertificateValidationException", results[1]!["error"]!.GetValue<string>());
        Assert.Contains("not signed by a registered CA", results[1]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(200, results[2]!["status"]!.GetValue<int>());
        Assert.Equal("ResourceAlreadyExistsException", results[3]!["error"]!.GetValue<string>());
        Assert.Equal(400, results[4]!["status"]!.GetValue<int>());

        var selfArn = results[2]!["body"]!["certificateArn"]!.GetValue<string>();
        var selfId = results[2]!["body"]!["certificateId"]!.GetValue<string>();
        var policy = TrellisHost.Unique("selfpol");
        var described = await host.IotCallsAsync(
        [
            ("describe_certificate", new { certificateId = signedId }),
            ("describe_certificate", new { certificateId = selfId }),
            ("update_certificate", new { certificateId = selfId, newStatus = "ACTIVE" }),
            ("create_thing", new { thingName = thing }),
            ("attach_thing_principal", new { thingName = thing, principal = selfArn }),
            ("create_policy", new { policyName = policy, policyDocument = Policies.PerThing }),
            ("attach_policy", new { policyName = policy, target = selfArn }),
        ], Ct);
        Assert.Equal("ACTIVE", described[0]!["body"]!["certificateDescription"]!["status"]!.GetValue<string>());
        Assert.Equal(caId, described[0]!["body"]!["certificateDescription"]!["caCertificateId"]!.GetValue<string>());
        Assert.Equal("INACTIVE", described[1]!["body"]!["certificateDescription"]!["status"]!.GetValue<string>());
        Assert.All(described[2..], r => Assert.Equal(200, r!["status"]!.GetValue<int>()));

        // The TLS listener lets a registered self-signed certificate in, and stops an unknown one at the handshake.
        var port = host.MqttsPort.ToString(CultureInfo.InvariantCulture);
        var ok = await ExternalTool.RunAsync("mosquitto_pub", ["-h", "127.0.0.1", "-p", port, "--cafile", host.CaPath, "--cert", selfSigned, "--key", selfKey, "-i", thing, "-t", $"devices/{thing}/x", "-m", "x", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(ok.ExitCode == 0, ok.Output);
        var stopped = await ExternalTool.RunAsync("mosquitto_pub", ["-h", "127.0.0.1", "-p", port, "--cafile", host.CaPath, "--cert", unregistered, "--key", unregisteredKey, "-i", "nobody", "-t", "x", "-m", "x"], Timeout, cancellationToken: Ct);
        Assert.True(stopped.ExitCode is not (0 or -1), $"expected a refusal, not success or a time-out (-1): exit {stopped.ExitCode}: {stopped.Output}");
        Assert.DoesNotContain("nobody", host.Server.Broker.ConnectedClientIds());
    }

    /// <summary>A fresh openssl CA registered (active, auto-registration on) with a verification certificate.</summary>
    private async Task<(OpensslCa Ca, string Id)> RegisterCaAsync(object? registrationConfig)
    {
        var ca = await OpensslCa.CreateAsync(Path.Combine(host.DataDirectory, TrellisHost.Unique("ca")), "company-ca", Ct);
        var code = (await host.IotCallsAsync([("get_registration_code", new { })], Ct))[0]!["body"]!["registrationCode"]!.GetValue<string>();
        var (verification, _) = await ca.IssueAsync("verification", $"/CN={code}", Ct);
        object args = registrationConfig is null
            ? new { caCertificate = ca.Pem, verificationCertificate = await File.ReadAllTextAsync(verification, Ct), setAsActive = true, allowAutoRegistration = true }
            : new { caCertificate = ca.Pem, verificationCertificate = await File.ReadAllTextAsync(verification, Ct), setAsActive = true, allowAutoRegistration = true, registrationConfig };
        var registered = await host.IotCallsAsync([("register_ca_certificate", args)], Ct);
        Assert.True(registered[0]!["status"]!.GetValue<int>() == 200, registered[0]!.ToJsonString());
        return (ca, registered[0]!["body"]!["certificateId"]!.GetValue<string>());
    }

    private async Task<JsonNode> AwsAsync(params string[] args)
    {
        var result = await ExternalTool.RunAsync("aws", ["iot", .. args, "--endpoint-url", host.Endpoint, "--output", "json"], TimeSpan.FromSeconds(60), host.AwsEnvironment, Ct);
        Assert.True(result.ExitCode == 0, $"aws iot {string.Join(' ', args)} failed: {result.Output}");
        return result.Stdout.Trim().Length == 0 ? new JsonObject() : JsonNode.Parse(result.Stdout)!;
    }

    private async Task AwsFailsAsync(string errorCode, string messagePart, params string[] args)
    {
        var result = await ExternalTool.RunAsync("aws", ["iot", .. args, "--endpoint-url", host.Endpoint], TimeSpan.FromSeconds(60), host.AwsEnvironment, Ct);
        Assert.True(result.ExitCode is not (0 or -1), $"expected a refusal, not success or a time-out (-1): exit {result.ExitCode}: {result.Output}");
        Assert.Contains($"({errorCode})", result.Stderr, StringComparison.Ordinal);
        Assert.Contains(messagePart, result.Stderr, StringComparison.Ordinal);
    }
}
