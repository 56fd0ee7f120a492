using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary>API users with roles, driven by boto3 with each user's own key.</summary>
[Collection(TrellisServerGroup.Name)]
public sealed class ApiUserTests(TrellisHost host)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Viewer_reads_operator_changes_only_admin_manages_users_and_deleted_keys_stop_working()
    {
        var viewer = await CreateUserAsync(TrellisHost.Unique("ann"), "viewer");
        var operatorKey = await CreateUserAsync(TrellisHost.Unique("bob"), "operator");
        var thing = TrellisHost.Unique("roles");

        var asViewer = await host.IotCallsAsync([("list_things", new { }), ("create_thing", new { thingName = thing })], Ct, viewer);
        Assert.Equal(200, asViewer[0]!["status"]!.GetValue<int>());
        Assert.Equal(403, asViewer[1]!["status"]!.GetValue<int>());
        Assert.Equal("AccessDeniedException", asViewer[1]!["error"]!.GetValue<string>());
        Assert.Contains("iot:CreateThing", asViewer[1]!["message"]!.GetValue<string>(), StringComparison.Ordinal);

        var asOperator = await host.IotCallsAsync([("create_thing", new { thingName = thing }), ("describe_thing", new { thingName = thing })], Ct, operatorKey);
        Assert.All(asOperator, r => Assert.Equal(200, r!["status"]!.GetValue<int>()));

        // Users are the admin's: the operator is refused, naming the permission.
        var refusedBody = await host.SignedRequestAsync("POST", "/api/users", """{"name":"mallory","role":"admin"}""", Ct, operatorKey);
        Assert.Equal(403, refusedBody["status"]!.GetValue<int>());
        Assert.Contains("iot:CreateApiUser", refusedBody["body"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);

        // The audit log names who did what.
        var audit = await host.SignedRequestAsync("GET", $"/api/audit?target={thing}", null, Ct);
        var events = audit["body"]!["events"]!.AsArray();
        Assert.Equal([viewer.KeyId, operatorKey.KeyId], events.Select(e => e!["accessKeyId"]!.GetValue<string>()));
        Assert.Equal([403, 200], events.Select(e => e!["status"]!.GetValue<int>()));

        // Deleted: the key is unknown at once.
        var delete = await host.SignedRequestAsync("DELETE", $"/api/users/{viewer.KeyId}", null, Ct);
        Assert.Equal(200, delete["status"]!.GetValue<int>());
        var afterDelete = await host.IotCallsAsync([("list_things", new { })], Ct, viewer);
        Assert.Equal(403, afterDelete[0]!["status"]!.GetValue<int>());
        Assert.Equal("UnrecognizedClientException", afterDelete[0]!["error"]!.GetValue<string>());

        var badRole = await host.SignedRequestAsync("POST", "/api/users", """{"name":"x","role":"superuser"}""", Ct);
        Assert.Equal(400, badRole["status"]!.GetValue<int>());
    }

    [Fact]
    public async Task Curl_signs_a_query_with_bare_commas_and_it_verifies_while_a_changed_query_does_not()
    {
        var key = await CreateUserAsync(TrellisHost.Unique("curl"), "viewer");
        async Task<(int Status, string Body)> CurlAsync(string pathAndQuery, string signedWith)
        {
            var result = await ExternalTool.RunAsync("curl",
                ["-s", "-w", "\n%{http_code}", "--aws-sigv4", "aws:amz:us-east-1:iot", "-u", signedWith, host.Endpoint + pathAndQuery],
                TimeSpan.FromSeconds(30), null, Ct);
            var lines = result.Stdout.TrimEnd().Split('\n');
            return (int.Parse(lines[^1], System.Globalization.CultureInfo.InvariantCulture), string.Join('\n', lines[..^1]));
        }

        // curl (and botocore, for a query already in the URL) sign the query as sent, commas and all.
        var bare = await CurlAsync("/api/alarms?state=ACTIVE,CLEARED", $"{key.KeyId}:{key.Secret}");
        Assert.True(bare.Status == 200, bare.Body);
        var encoded = await CurlAsync("/api/alarms?state=ACTIVE%2CCLEARED", $"{key.KeyId}:{key.Secret}");
        Assert.True(encoded.Status == 200, encoded.Body);
        var wrongSecret = await CurlAsync("/api/alarms?state=ACTIVE,CLEARED", $"{key.KeyId}:not-the-secret");
        Assert.Equal(403, wrongSecret.Status);
        Assert.Contains("signature", wrongSecret.Body, StringComparison.OrdinalIgnoreCase);
    }

    private Task<(string KeyId, string Secret)> CreateUserAsync(string name, string role) => host.CreateApiUserAsync(name, role, Ct);
}
