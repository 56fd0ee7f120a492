using Trellis.Device;
using Trellis.IntegrationTests.TestKit;
using Trellis.Server;

namespace Trellis.IntegrationTests.Api;

/// <summary>
/// A server whose ownership tokens live two seconds instead of an hour (swept every half second),
/// and whose rules' outbox keeps a message two seconds instead of a day.
/// </summary>
public sealed class ShortClaimHost : TrellisHost
{
    protected override TrellisServerOptions Configure(TrellisServerOptions options) => options with
    {
        Provisioning = new Registry.Provisioning.ProvisioningOptions
        {
            OwnershipTokenLifetime = TimeSpan.FromSeconds(2),
            SweepInterval = TimeSpan.FromMilliseconds(500),
        },
        Outbox = new Rules.OutboxOptions { MaxAge = TimeSpan.FromSeconds(2), MaxBackoff = TimeSpan.FromSeconds(1) },
    };
}

[CollectionDefinition(Name)]
public sealed class ShortClaimGroup : ICollectionFixture<ShortClaimHost>
{
    public const string Name = "short-claims";
}

/// <summary>An ownership token that outlives its lifetime is refused, and its unprovisioned certificate is deleted.</summary>
[Collection(ShortClaimGroup.Name)]
public sealed class OwnershipTokenExpiryTests(ShortClaimHost host)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task An_expired_ownership_token_is_refused_and_its_certificate_deleted()
    {
        var claim = host.Server.Registry.CreateKeysAndCertificate(setAsActive: true);
        var policy = TrellisHost.Unique("claim");
        Assert.True(host.Server.Registry.CreatePolicy(policy, """{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}""").IsSuccess);
        Assert.Null(host.Server.Registry.AttachPolicy(policy, claim.Certificate.Arn));
        var template = TrellisHost.Unique("t");
        Assert.True(host.Server.Registry.CreateProvisioningTemplate(template, null,
            """{"Parameters":{"AWS::IoT::Certificate::Id":{"Type":"String"}},"Resources":{"certificate":{"Type":"AWS::IoT::Certificate","Properties":{"CertificateId":{"Ref":"AWS::IoT::Certificate::Id"}}}}}""",
            true, "arn:aws:iam::000000000000:role/t", null, null).IsSuccess);

        var options = new DeviceOptions
        {
            Host = "127.0.0.1",
            Port = host.MqttsPort,
            ThingName = TrellisHost.Unique("claim"),
            Certificate = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(claim.Certificate.Pem, claim.PrivateKeyPem),
            CaCertificate = System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadCertificateFromFile(host.CaPath),
        };
        await using var device = await TrellisDevice.ConnectAsync(options, Ct);
        using var provisioning = new FleetProvisioningClient(device);
        var certificate = await provisioning.CreateKeysAndCertificateAsync(Ct);

        // The token lives 2 s: wait until the sweep (every 0.5 s) has deleted its certificate, the server's own signal that it expired.
        Assert.True(await Eventually.TrueAsync(() => host.Server.Registry.FindCertificate(certificate.CertificateId) is null, TimeSpan.FromSeconds(20), Ct), "the unprovisioned certificate was not deleted");

        var expired = await Assert.ThrowsAsync<ProvisioningRejectedException>(() => provisioning.RegisterThingAsync(template, certificate.OwnershipToken, null, Ct));
        Assert.Equal("InvalidCertificateOwnershipToken", expired.ErrorCode);
        Assert.Contains("expired", expired.Reason, StringComparison.Ordinal);

        // A token used in time provisions, and its certificate survives the sweep.
        var inTime = await provisioning.CreateKeysAndCertificateAsync(Ct);
        await provisioning.RegisterThingAsync(template, inTime.OwnershipToken, null, Ct);

        // Past its token's lifetime and several sweeps (a fresh token made after it has been swept).
        var marker = await provisioning.CreateKeysAndCertificateAsync(Ct);
        Assert.True(await Eventually.TrueAsync(() => host.Server.Registry.FindCertificate(marker.CertificateId) is null, TimeSpan.FromSeconds(20), Ct), "the marker certificate was not swept");
        Assert.Equal("ACTIVE", host.Server.Registry.FindCertificate(inTime.CertificateId)?.Status);
    }
}

/// <summary>A message that waits too long in the outbox expires to the rule's errorAction.</summary>
[Collection(ShortClaimGroup.Name)]
public sealed class OutboxExpiryTests(ShortClaimHost host)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_message_the_target_never_takes_expires_to_the_error_action()
    {
        // A receiver confirms the destination, then goes away for good.
        using var receiver = new HttpReceiver();
        var url = receiver.Url + "down";
        var port = new Uri(url).Port;
        var prefix = TrellisHost.Unique("exp");
        var rule = TrellisHost.Unique("expire_");
        var created = await host.IotCallsAsync([("create_topic_rule", new
        {
            ruleName = rule,
            topicRulePayload = new
            {
                sql = $"SELECT n FROM '{prefix}/in'",
                actions = new object[] { new { http = new { url, confirmationUrl = receiver.Url } } },
                errorAction = new { republish = new { topic = $"{prefix}/errors", roleArn = "r" } },
            },
        })], Ct);
        Assert.True(created[0]!["status"]!.GetValue<int>() == 200, created[0]!.ToJsonString());
        Assert.True(await Eventually.TrueAsync(() => receiver.EnableAnswers.Contains(200), TimeSpan.FromSeconds(10), Ct), "the destination was not confirmed");
        receiver.Dispose();
        var subscriber = TrellisHost.Unique("sub");
        using var errors = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(subscriber), "-t", $"{prefix}/errors"]);
        await host.WaitSubscribedAsync(subscriber, errors);

        var pub = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("pub")), "-t", $"{prefix}/in", "-m", "{\"n\":7}", "-q", "1"], TimeSpan.FromSeconds(10), cancellationToken: Ct);
        Assert.True(pub.ExitCode == 0, pub.Output);
        string? line = null;
        Assert.True(await errors.WaitForLineAsync(l => (line = l).Contains("failures", StringComparison.Ordinal), TimeSpan.FromSeconds(15), Ct), "no expiry report: " + errors.Stderr);
        var report = System.Text.Json.Nodes.JsonNode.Parse(line!)!;
        Assert.Equal(rule, report["ruleName"]!.GetValue<string>());
        Assert.Equal("HttpAction", report["failures"]![0]!["failedAction"]!.GetValue<string>());
        Assert.Contains("not delivered", report["failures"]![0]!["errorMessage"]!.GetValue<string>(), StringComparison.Ordinal);
        var outbox = (Rules.Outbox)host.Server.Services.GetService(typeof(Rules.Outbox))!;
        Assert.Equal(0, outbox.Waiting($"http|http://127.0.0.1:{port}"));
    }
}
