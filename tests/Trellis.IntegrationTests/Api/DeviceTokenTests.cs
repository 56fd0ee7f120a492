using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary>Device tokens: created over the signed /api routes, used by mosquitto clients as user name and password.</summary>
[Collection(TrellisServerGroup.Name)]
public sealed class DeviceTokenTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_token_authenticates_its_thing_under_the_things_policies_and_stops_working_when_revoked()
    {
        var thing = TrellisHost.Unique("tok");
        var policy = TrellisHost.Unique("tokpol");
        await CallAsync(("create_thing", new { thingName = thing }));
        var created = await SignedAsync("POST", $"/api/things/{thing}/tokens", """{"description":"field unit","expiresInSeconds":3600}""");
        Assert.Equal(200, created["status"]!.GetValue<int>());
        var token = created["body"]!["token"]!.GetValue<string>();
        var arn = created["body"]!["tokenArn"]!.GetValue<string>();
        var id = created["body"]!["tokenId"]!.GetValue<string>();

        // Policies attach to the token's ARN like to a certificate's.
        var perThing = Policies.PerThing;
        var attach = await CallAsync(("create_policy", new { policyName = policy, policyDocument = perThing }), ("attach_policy", new { policyName = policy, target = arn }));
        Assert.All(attach, r => Assert.Equal(200, r!["status"]!.GetValue<int>()));

        // Listed without the secret; the hash is all the server keeps.
        var list = await SignedAsync("GET", $"/api/things/{thing}/tokens");
        var listed = list["body"]!["tokens"]![0]!;
        Assert.Equal(id, listed["tokenId"]!.GetValue<string>());
        Assert.Equal("ACTIVE", listed["status"]!.GetValue<string>());
        Assert.Null(listed["token"]);
        var stored = string.Concat(new[] { host.Server.Data.RegistryPath, host.Server.Data.RegistryPath + "-wal" }.Where(File.Exists).Select(f => File.ReadAllText(f, System.Text.Encoding.Latin1)));
        Assert.Contains(id, stored, StringComparison.Ordinal);
        Assert.DoesNotContain(token.Split('.')[1], stored, StringComparison.Ordinal);

        // The device: user name = thing name, password = token; its policy applies.
        var args = new List<string> { "-h", "127.0.0.1", "-p", host.MqttPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "-u", thing, "-P", token, "-i", thing };
        var denied = await ExternalTool.RunAsync("mosquitto_pub", [.. args, "-V", "mqttv5", "-t", "devices/someone-else/x", "-m", "x", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.Contains("Not authorized", denied.Output, StringComparison.Ordinal);
        using var sub = ExternalTool.StartBackground("mosquitto_sub", [.. args, "-V", "mqttv5", "-t", $"devices/{thing}/in", "-q", "1"]);
        Assert.True(await Eventually.TrueAsync(() => host.Server.Broker.SubscriptionsOf(thing).Count > 0, Timeout, Ct), "token client did not subscribe: " + sub.Stderr);
        var pub = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("op")), "-t", $"devices/{thing}/in", "-m", "hello", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(pub.ExitCode == 0, pub.Output);
        Assert.True(await sub.WaitForLineAsync(l => l == "hello", Timeout, Ct), "not received: " + sub.Stderr);

        // Wrong token, and the right token under another thing's name: bad user name or password.
        var wrong = await ExternalTool.RunAsync("mosquitto_pub", ["-h", "127.0.0.1", "-p", args[3], "-u", thing, "-P", id + ".not-the-secret", "-i", thing, "-V", "mqttv5", "-t", $"devices/{thing}/x", "-m", "x"], Timeout, cancellationToken: Ct);
        Assert.Contains("Bad user name or password", wrong.Output, StringComparison.OrdinalIgnoreCase);

        // Revoked: the live connection is dropped at once and new ones are refused.
        var revoke = await SignedAsync("DELETE", $"/api/tokens/{id}");
        Assert.Equal(200, revoke["status"]!.GetValue<int>());
        Assert.True(await Eventually.TrueAsync(() => !host.Server.Broker.ConnectedClientIds().Contains(thing), TimeSpan.FromSeconds(2), Ct), "revoked token still connected");
        var after = await ExternalTool.RunAsync("mosquitto_pub", [.. args, "-V", "mqttv5", "-t", $"devices/{thing}/x", "-m", "x"], Timeout, cancellationToken: Ct);
        Assert.Contains("Bad user name or password", after.Output, StringComparison.OrdinalIgnoreCase);
        var described = await SignedAsync("GET", $"/api/tokens/{id}");
        Assert.Equal("REVOKED", described["body"]!["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task Expired_and_unknown_tokens_are_refused_with_clear_errors()
    {
        var thing = TrellisHost.Unique("exp");
        await CallAsync(("create_thing", new { thingName = thing }));
        var created = await SignedAsync("POST", $"/api/things/{thing}/tokens", "{}");
        var token = created["body"]!["token"]!.GetValue<string>();
        var id = created["body"]!["tokenId"]!.GetValue<string>();
        Assert.Equal(200, (await SignedAsync("POST", $"/api/tokens/{id}/expire"))["status"]!.GetValue<int>());
        var expired = await ExternalTool.RunAsync("mosquitto_pub", ["-h", "127.0.0.1", "-p", host.MqttPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "-u", thing, "-P", token, "-i", thing, "-V", "mqttv5", "-t", "x", "-m", "x"], Timeout, cancellationToken: Ct);
        Assert.Contains("Bad user name or password", expired.Output, StringComparison.OrdinalIgnoreCase);
        Assert.Equal("EXPIRED", (await SignedAsync("GET", $"/api/tokens/{id}"))["body"]!["status"]!.GetValue<string>());

        var noThing = await SignedAsync("POST", "/api/things/no-such-thing/tokens", "{}");
        Assert.Equal(404, noThing["status"]!.GetValue<int>());
        var badExpiry = await SignedAsync("POST", $"/api/things/{thing}/tokens", """{"expiresInSeconds":-5}""");
        Assert.Equal(400, badExpiry["status"]!.GetValue<int>());
        Assert.Equal(404, (await SignedAsync("DELETE", "/api/tokens/0000000000000000"))["status"]!.GetValue<int>());
    }

    private Task<JsonNode> SignedAsync(string method, string path, string? body = null) => host.SignedRequestAsync(method, path, body, Ct);

    private Task<JsonNode?[]> CallAsync(params (string Call, object Args)[] calls) => host.IotCallsAsync(calls, Ct);
}
