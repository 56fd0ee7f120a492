using Trellis.IntegrationTests.TestKit;
using Trellis.Server;

namespace Trellis.IntegrationTests.Api;

/// <summary>A server whose shadows may hold 128 KiB, as an embedding host may allow.</summary>
public sealed class LargeShadowHost : TrellisHost
{
    protected override TrellisServerOptions Configure(TrellisServerOptions options) => options with
    {
        Shadows = new Trellis.Shadows.ShadowOptions { MaxDocumentBytes = 128 * 1024 },
    };
}

[CollectionDefinition(Name)]
public sealed class LargeShadowGroup : ICollectionFixture<LargeShadowHost>
{
    public const string Name = "large-shadow";
}

/// <summary>
/// Values the fleet index cannot hold: a shadow string longer than Lucene's term limit (32,766
/// UTF-8 bytes) made Lucene refuse the thing's whole document, and the exception ended the
/// indexer's thread and with it the process. The value is now left out; its thing stays searchable.
/// </summary>
[Collection(LargeShadowGroup.Name)]
public sealed class FleetIndexLimitsTests(LargeShadowHost host)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_shadow_value_past_lucenes_term_limit_leaves_its_thing_searchable_and_the_server_serving()
    {
        var thing = TrellisHost.Unique("bignote");
        var other = TrellisHost.Unique("smallnote");
        var setup = await host.IotCallsAsync([
            ("update_indexing_configuration", new { thingIndexingConfiguration = new { thingIndexingMode = "REGISTRY_AND_SHADOW" } }),
            ("create_thing", new { thingName = thing }),
            ("create_thing", new { thingName = other }),
            ("data:update_thing_shadow", new { thingName = thing, payload = new { state = new { reported = new { note = new string('é', 20_000), level = 7 } } } }),
            ("data:update_thing_shadow", new { thingName = other, payload = new { state = new { reported = new { note = "short", level = 7 } } } }),
        ], Ct);
        Assert.All(setup, r => Assert.True(r!["status"]!.GetValue<int>() == 200, r.ToJsonString()));

        // 20,000 × 'é' is 40,000 UTF-8 bytes: the thing is found by its other values, not by that one.
        string[] both = [.. new[] { thing, other }.Order(StringComparer.Ordinal)];
        Assert.True(await Eventually.TrueAsync(async () => (await SearchAsync("shadow.reported.level:7")).SequenceEqual(both), TimeSpan.FromSeconds(30), Ct),
            "both things should be found by shadow.reported.level:7");
        Assert.Equal([other], await SearchAsync("shadow.reported.note:*"));
        var index = (await host.IotCallsAsync([("describe_index", new { indexName = "AWS_Things" })], Ct))[0]!;
        Assert.Equal("ACTIVE", index["body"]!["indexStatus"]!.GetValue<string>());

        // The broker and the index go on: a later change of the thing is searchable too.
        var later = await host.IotCallsAsync([("data:update_thing_shadow", new { thingName = thing, payload = new { state = new { reported = new { level = 8 } } } })], Ct);
        Assert.Equal(200, later[0]!["status"]!.GetValue<int>());
        Assert.True(await Eventually.TrueAsync(async () => (await SearchAsync("shadow.reported.level:8")).SequenceEqual([thing]), TimeSpan.FromSeconds(30), Ct));
    }

    private async Task<string[]> SearchAsync(string query)
    {
        var result = (await host.IotCallsAsync([("search_index", new { queryString = query })], Ct))[0]!;
        Assert.True(result["status"]!.GetValue<int>() == 200, result.ToJsonString());
        return [.. result["body"]!["things"]!.AsArray().Select(t => t!["thingName"]!.GetValue<string>()).Order(StringComparer.Ordinal)];
    }
}
