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
        await host.WaitSubscribedAsync(thing, sub);
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

        // The body is bound to a record: each kind of bad member is named, and nothing is created.
        var bodies = new (string Body, string Says)[]
        {
            ("""{"expiresInSeconds":"60"}""", "'expiresInSeconds' must be an integer"),
            ("""{"description":7}""", "'description' must be a string"),
            ("""{"expires":60}""", "Unknown member 'expires'; known members are expiresInSeconds, description"),
            ("""[1,2]""", "not a JSON object"),
            ("""{"description":""", "not valid JSON"),
        };
        foreach (var (body, says) in bodies)
        {
            var refused = await SignedAsync("POST", $"/api/things/{thing}/tokens", body);
            Assert.Equal(400, refused["status"]!.GetValue<int>());
            Assert.Equal("InvalidRequestException", refused["headers"]!["x-amzn-ErrorType"]!.GetValue<string>().Split(':')[0]);
            Assert.Contains(says, refused["body"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        }

        Assert.Single((await SignedAsync("GET", $"/api/things/{thing}/tokens"))["body"]!["tokens"]!.AsArray());
    }

    [Fact]
    public async Task A_token_remembered_from_earlier_connects_follows_every_registry_change()
    {
        // Verified tokens and a connecting thing's groups are kept in memory between connects: each
        // change below must still take effect at the next connect.
        var thing = TrellisHost.Unique("tokc");
        var (policy, groupPolicy, group) = (TrellisHost.Unique("tokcp"), TrellisHost.Unique("tokcg"), TrellisHost.Unique("tokgrp"));
        await CallAsync(("create_thing", new { thingName = thing }));
        var created = await SignedAsync("POST", $"/api/things/{thing}/tokens", "{}");
        var (token, arn, id) = (created["body"]!["token"]!.GetValue<string>(), created["body"]!["tokenArn"]!.GetValue<string>(), created["body"]!["tokenId"]!.GetValue<string>());
        var onlyA = $$"""{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"},{"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:*:*:topic/devices/{{thing}}/a"}]}""";
        var alsoB = $$"""{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:*:*:topic/devices/{{thing}}/b"}]}""";
        Assert.All(await CallAsync(("create_policy", new { policyName = policy, policyDocument = onlyA }), ("attach_policy", new { policyName = policy, target = arn })), r => Assert.Equal(200, r!["status"]!.GetValue<int>()));

        async Task<ExternalTool.Result> PublishAsync(string topic, string password) =>
            await ExternalTool.RunAsync("mosquitto_pub", ["-h", "127.0.0.1", "-p", host.MqttPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "-u", thing, "-P", password, "-i", thing, "-V", "mqttv5", "-t", topic, "-m", "x", "-q", "1"], Timeout, cancellationToken: Ct);

        Assert.Contains("Not authorized", (await PublishAsync($"devices/{thing}/b", token)).Output, StringComparison.Ordinal);
        var allowedA = await PublishAsync($"devices/{thing}/a", token);
        Assert.True(allowedA.ExitCode == 0 && !allowedA.Output.Contains("Not authorized", StringComparison.Ordinal), allowedA.Output);

        // The thing joins a group whose policy allows b: the next connect has it.
        var joined = await CallAsync(
            ("create_thing_group", new { thingGroupName = group }),
            ("create_policy", new { policyName = groupPolicy, policyDocument = alsoB }),
            ("add_thing_to_thing_group", new { thingGroupName = group, thingName = thing }));
        Assert.All(joined, r => Assert.Equal(200, r!["status"]!.GetValue<int>()));
        var groupArn = joined[0]!["body"]!["thingGroupArn"]!.GetValue<string>();
        Assert.Equal(200, (await CallAsync(("attach_policy", new { policyName = groupPolicy, target = groupArn })))[0]!["status"]!.GetValue<int>());
        var allowedB = await PublishAsync($"devices/{thing}/b", token);
        Assert.True(allowedB.ExitCode == 0 && !allowedB.Output.Contains("Not authorized", StringComparison.Ordinal), allowedB.Output);

        // Expired early: refused at once, though it was verified a moment ago.
        Assert.Equal(200, (await SignedAsync("POST", $"/api/tokens/{id}/expire"))["status"]!.GetValue<int>());
        Assert.Contains("Bad user name or password", (await PublishAsync($"devices/{thing}/a", token)).Output, StringComparison.OrdinalIgnoreCase);

        // A second token works, until its thing is deleted (which deletes its tokens).
        var second = (await SignedAsync("POST", $"/api/things/{thing}/tokens", "{}"))["body"]!["token"]!.GetValue<string>();
        Assert.Equal(200, (await CallAsync(("attach_policy", new { policyName = policy, target = $"arn:aws:iot:us-east-1:000000000000:devicetoken/{second.Split('.')[0]}" })))[0]!["status"]!.GetValue<int>());
        var beforeDelete = await PublishAsync($"devices/{thing}/a", second);
        Assert.True(beforeDelete.ExitCode == 0 && !beforeDelete.Output.Contains("Not authorized", StringComparison.Ordinal), beforeDelete.Output);
        Assert.Equal(200, (await CallAsync(("remove_thing_from_thing_group", new { thingGroupName = group, thingName = thing }), ("delete_thing", new { thingName = thing })))[1]!["status"]!.GetValue<int>());
        Assert.Contains("Bad user name or password", (await PublishAsync($"devices/{thing}/a", second)).Output, StringComparison.OrdinalIgnoreCase);
    }

    private Task<JsonNode> SignedAsync(string method, string path, string? body = null) => host.SignedRequestAsync(method, path, body, Ct);

    private Task<JsonNode?[]> CallAsync(params (string Call, object Args)[] calls) => host.IotCallsAsync(calls, Ct);
}
