using Trellis.Device;
using Trellis.IntegrationTests.TestKit;
using Trellis.Server;

namespace Trellis.IntegrationTests.Api;

/// <summary>A server whose ownership tokens live two seconds instead of an hour, swept every half second.</summary>
public sealed class ShortClaimHost : TrellisHost
{
    protected override TrellisServerOptions Configure(TrellisServerOptions options) => options with
    {
        Provisioning = new Registry.Provisioning.ProvisioningOptions
        {
            OwnershipTokenLifetime = TimeSpan.FromSeconds(2),
            SweepInterval = TimeSpan.FromMilliseconds(500),
        },
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
        await Task.Delay(TimeSpan.FromSeconds(2.5), Ct);

        var expired = await Assert.ThrowsAsync<ProvisioningRejectedException>(() => provisioning.RegisterThingAsync(template, certificate.OwnershipToken, null, Ct));
        Assert.Equal("InvalidCertificateOwnershipToken", expired.ErrorCode);
        Assert.Contains("expired", expired.Reason, StringComparison.Ordinal);
        Assert.True(await Eventually.TrueAsync(() => host.Server.Registry.FindCertificate(certificate.CertificateId) is null, TimeSpan.FromSeconds(5), Ct), "the unprovisioned certificate was not deleted");

        // A token used in time provisions, and its certificate survives the sweep.
        var inTime = await provisioning.CreateKeysAndCertificateAsync(Ct);
        await provisioning.RegisterThingAsync(template, inTime.OwnershipToken, null, Ct);
        await Task.Delay(TimeSpan.FromSeconds(3), Ct);
        Assert.Equal("ACTIVE", host.Server.Registry.FindCertificate(inTime.CertificateId)?.Status);
    }
}
