using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Broker;

/// <summary>
/// Refusals say which of their causes it was: a certificate with no policy attached, a policy that
/// does not allow the client id, an explicit Deny; and a policy naming an iot: action AWS IoT does
/// not define is refused when it is written (boto3), while other services' actions pass.
/// </summary>
[Collection(TrellisServerGroup.Name)]
public sealed class RefusalReasonTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_refused_connect_is_logged_with_its_cause()
    {
        var policy = TrellisHost.Unique("perthing");
        var device = await host.ProvisionAsync(TrellisHost.Unique("why"), policy, Policies.PerThing, Ct);

        // A client id the policy does not allow: the policy is named, and the client id.
        var wrongId = TrellisHost.Unique("not-me");
        var refused = await ExternalTool.RunAsync("mosquitto_pub", [.. host.TlsArgs(device, clientId: wrongId), "-t", $"devices/{device.ThingName}/x", "-m", "x", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("not authorised", refused.Output, StringComparison.OrdinalIgnoreCase);
        Assert.True(await Eventually.TrueAsync(() => host.Logs.Contains($"policy {policy} does not allow iot:Connect for client id '{wrongId}'"), Timeout, Ct),
            string.Join('\n', host.Logs.Entries.Select(e => e.Message).Where(m => m.Contains(wrongId, StringComparison.Ordinal))));

        // The same certificate with its policy detached: "no policy is attached", whatever the client id.
        var detached = await host.IotCallsAsync([("detach_policy", new { policyName = policy, target = device.CertificateArn })], Ct);
        Assert.Equal(200, detached[0]!["status"]!.GetValue<int>());
        var bare = await ExternalTool.RunAsync("mosquitto_pub", [.. host.TlsArgs(device), "-t", $"devices/{device.ThingName}/x", "-m", "x", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.NotEqual(0, bare.ExitCode);
        Assert.Contains("not authorised", bare.Output, StringComparison.OrdinalIgnoreCase);
        Assert.True(await Eventually.TrueAsync(() => host.Logs.Entries.Any(e => e.Message.Contains(device.ThingName, StringComparison.Ordinal) && e.Message.Contains("no policy is attached to this principal", StringComparison.Ordinal)), Timeout, Ct),
            string.Join('\n', host.Logs.Entries.Select(e => e.Message).Where(m => m.Contains(device.ThingName, StringComparison.Ordinal))));
    }

    [Fact]
    public async Task A_policy_naming_an_iot_action_aws_does_not_define_is_refused_with_the_action_named()
    {
        const string Typo = """{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:Conect"],"Resource":"*"}]}""";
        const string Mixed = """{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:Connect","iot:Get*","greengrass:*","iot:DescribeJobExecution"],"Resource":"*"}]}""";
        const string Pattern = """{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Frobnicate*","Resource":"*"}]}""";
        var (typo, mixed, pattern) = (TrellisHost.Unique("typo"), TrellisHost.Unique("mixed"), TrellisHost.Unique("pattern"));
        var results = await host.IotCallsAsync([
            ("create_policy", new { policyName = typo, policyDocument = Typo }),
            ("create_policy", new { policyName = mixed, policyDocument = Mixed }),
            ("create_policy_version", new { policyName = mixed, policyDocument = Typo }),
            ("create_policy", new { policyName = pattern, policyDocument = Pattern }),
        ], Ct);
        Assert.Equal("MalformedPolicyException", results[0]!["error"]!.GetValue<string>());
        Assert.Contains("iot:Conect is not an AWS IoT action (did you mean iot:Connect?)", results[0]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.True(results[1]!["status"]!.GetValue<int>() == 200, results[1]!.ToJsonString());
        Assert.Equal("MalformedPolicyException", results[2]!["error"]!.GetValue<string>());
        Assert.Equal("MalformedPolicyException", results[3]!["error"]!.GetValue<string>());
        Assert.Contains("iot:Frobnicate*", results[3]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
    }
}
