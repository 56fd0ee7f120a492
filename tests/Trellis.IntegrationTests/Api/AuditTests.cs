using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary>The audit log records what boto3 changed (who, what, on what, how it ended) and not what it read.</summary>
[Collection(TrellisServerGroup.Name)]
public sealed class AuditTests(TrellisHost host)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Changes_are_recorded_with_key_operation_target_and_result_and_reads_are_not()
    {
        var thing = TrellisHost.Unique("audited");
        var results = await host.IotCallsAsync(
            [
                ("create_thing", new { thingName = thing }),
                ("create_thing", new { thingName = thing, attributePayload = new { attributes = new { a = "b" } } }),
                ("describe_thing", new { thingName = thing }),
                ("list_things", new { }),
                ("delete_thing", new { thingName = thing }),
            ],
            Ct);
        Assert.Equal(409, results[1]!["status"]!.GetValue<int>());

        var audit = await SignedAsync($"/api/audit?target={thing}");
        var events = audit["body"]!["events"]!.AsArray();
        Assert.Equal(["CreateThing", "CreateThing", "DeleteThing"], events.Select(e => e!["operation"]!.GetValue<string>()));
        Assert.Equal([200, 409, 200], events.Select(e => e!["status"]!.GetValue<int>()));
        Assert.Equal("ResourceAlreadyExistsException", events[1]!["errorType"]!.GetValue<string>());
        Assert.All(events, e => Assert.Equal(host.Server.AccessKeys.AdminAccessKeyId, e!["accessKeyId"]!.GetValue<string>()));
        Assert.All(events, e => Assert.Equal($"thingName={thing}", e!["target"]!.GetValue<string>()));

        var failed = await SignedAsync($"/api/audit?target={thing}&failed=true");
        Assert.Single(failed["body"]!["events"]!.AsArray());
        var paged = await SignedAsync($"/api/audit?target={thing}&maxResults=2");
        Assert.Equal(2, paged["body"]!["events"]!.AsArray().Count);
        var rest = await SignedAsync($"/api/audit?target={thing}&maxResults=2&nextToken={paged["body"]!["nextToken"]!.GetValue<string>()}");
        Assert.Equal("DeleteThing", rest["body"]!["events"]![0]!["operation"]!.GetValue<string>());

        var bad = await SignedAsync("/api/audit?since=yesterday");
        Assert.Equal(400, bad["status"]!.GetValue<int>());
    }

    private Task<JsonNode> SignedAsync(string path) => host.SignedRequestAsync("GET", path, null, Ct);
}
