using System.Text.Json;
using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary>Thing types and thing groups through boto3, and group policies on live MQTT connections.</summary>
[Collection(TrellisServerGroup.Name)]
public sealed class ThingGroupTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Thing_types_follow_aws_lifecycle_create_use_deprecate_delete()
    {
        var type = TrellisHost.Unique("sensor");
        var thing = TrellisHost.Unique("t");
        var r = await CallAsync(
            ("create_thing_type", new { thingTypeName = type, thingTypeProperties = new { thingTypeDescription = "temperature sensors", searchableAttributes = new[] { "site" } } }),
            ("describe_thing_type", new { thingTypeName = type }),
            ("create_thing", new { thingName = thing, thingTypeName = type, attributePayload = new { attributes = new { site = "lyon" } } }),
            ("describe_thing", new { thingName = thing }),
            ("list_thing_types", new { thingTypeName = type }),
            ("delete_thing_type", new { thingTypeName = type }),
            ("deprecate_thing_type", new { thingTypeName = type }),
            ("create_thing", new { thingName = thing + "x", thingTypeName = type }),
            ("delete_thing_type", new { thingTypeName = type }),
            ("update_thing", new { thingName = thing, removeThingType = true }),
            ("delete_thing_type", new { thingTypeName = type }),
            ("describe_thing_type", new { thingTypeName = type }),
            ("create_thing", new { thingName = thing + "y", thingTypeName = "no-such-type" }));

        Assert.Equal(200, Status(r[0]));
        Assert.EndsWith(":thingtype/" + type, Body(r[0])["thingTypeArn"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("temperature sensors", Body(r[1])["thingTypeProperties"]!["thingTypeDescription"]!.GetValue<string>());
        Assert.Equal("""["site"]""", Body(r[1])["thingTypeProperties"]!["searchableAttributes"]!.ToJsonString());
        Assert.False(Body(r[1])["thingTypeMetadata"]!["deprecated"]!.GetValue<bool>());
        Assert.Equal(type, Body(r[3])["thingTypeName"]!.GetValue<string>());
        Assert.Equal(type, Body(r[4])["thingTypes"]![0]!["thingTypeName"]!.GetValue<string>());
        Assert.Equal((400, "InvalidRequestException"), Error(r[5])); // not deprecated yet
        Assert.Equal(200, Status(r[6]));
        Assert.Equal((400, "InvalidRequestException"), Error(r[7])); // deprecated: no new things
        Assert.Equal((400, "InvalidRequestException"), Error(r[8])); // still used by a thing
        Assert.Equal(200, Status(r[10]));
        Assert.Equal((404, "ResourceNotFoundException"), Error(r[11]));
        Assert.Equal((404, "ResourceNotFoundException"), Error(r[12]));
    }

    [Fact]
    public async Task Nested_groups_list_describe_and_membership_follow_aws_shapes()
    {
        var root = TrellisHost.Unique("site");
        var child = TrellisHost.Unique("floor");
        var thing = TrellisHost.Unique("t");
        var r = await CallAsync(
            ("create_thing_group", new { thingGroupName = root, thingGroupProperties = new { thingGroupDescription = "a site", attributePayload = new { attributes = new { city = "lyon" } } } }),
            ("create_thing_group", new { thingGroupName = child, parentGroupName = root }),
            ("create_thing", new { thingName = thing }),
            ("add_thing_to_thing_group", new { thingGroupName = child, thingName = thing }),
            ("describe_thing_group", new { thingGroupName = child }),
            ("list_thing_groups", new { parentGroup = root }),
            ("list_things_in_thing_group", new { thingGroupName = root }),
            ("list_things_in_thing_group", new { thingGroupName = root, recursive = true }),
            ("list_thing_groups_for_thing", new { thingName = thing }),
            ("delete_thing_group", new { thingGroupName = root }),
            ("update_thing_group", new { thingGroupName = root, thingGroupProperties = new { attributePayload = new { attributes = new { city = "paris" }, merge = true } }, expectedVersion = 1 }),
            ("update_thing_group", new { thingGroupName = root, thingGroupProperties = new { thingGroupDescription = "stale" }, expectedVersion = 1 }),
            ("create_thing_group", new { thingGroupName = TrellisHost.Unique("orphan"), parentGroupName = "no-such-group" }),
            ("add_thing_to_thing_group", new { thingGroupName = child, thingName = "no-such-thing" }),
            ("remove_thing_from_thing_group", new { thingGroupName = child, thingName = thing }),
            ("list_things_in_thing_group", new { thingGroupName = child }),
            ("describe_thing_group", new { thingGroupName = root }));

        Assert.All(r[..5], x => Assert.Equal(200, Status(x)));
        var described = Body(r[4]);
        Assert.Equal(root, described["thingGroupMetadata"]!["parentGroupName"]!.GetValue<string>());
        Assert.Equal(root, described["thingGroupMetadata"]!["rootToParentThingGroups"]![0]!["groupName"]!.GetValue<string>());
        Assert.Equal(child, Body(r[5])["thingGroups"]![0]!["groupName"]!.GetValue<string>());
        Assert.Empty(Body(r[6])["things"]!.AsArray());
        Assert.Equal($"[\"{thing}\"]", Body(r[7])["things"]!.ToJsonString());
        Assert.Equal(child, Body(r[8])["thingGroups"]![0]!["groupName"]!.GetValue<string>());
        Assert.Equal((400, "InvalidRequestException"), Error(r[9])); // has a child group
        Assert.Equal(2, Body(r[10])["version"]!.GetValue<int>());
        Assert.Equal((409, "VersionConflictException"), Error(r[11]));
        Assert.Equal((404, "ResourceNotFoundException"), Error(r[12]));
        Assert.Equal((404, "ResourceNotFoundException"), Error(r[13]));
        Assert.Empty(Body(r[15])["things"]!.AsArray());
        Assert.Equal("paris", Body(r[16])["thingGroupProperties"]!["attributePayload"]!["attributes"]!["city"]!.GetValue<string>());
        Assert.Equal("a site", Body(r[16])["thingGroupProperties"]!["thingGroupDescription"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_policy_on_a_parent_group_applies_to_things_in_child_groups_and_changes_take_effect_at_once()
    {
        // The device's own policy lets it connect only; the fleet policy comes from its group.
        var connectOnly = """{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"}]}""";
        var device = await host.ProvisionAsync(TrellisHost.Unique("g"), TrellisHost.Unique("conn"), connectOnly, Ct);
        var root = TrellisHost.Unique("fleet");
        var child = TrellisHost.Unique("batch");
        var policy = TrellisHost.Unique("fleetpol");
        var topic = $"fleet/{root}/news";
        var fleetPolicy = JsonSerializer.Serialize(new
        {
            Version = "2012-10-17",
            Statement = new object[]
            {
                new { Effect = "Allow", Action = new[] { "iot:Subscribe" }, Resource = $"arn:aws:iot:*:*:topicfilter/fleet/{root}/*" },
                new { Effect = "Allow", Action = new[] { "iot:Receive" }, Resource = $"arn:aws:iot:*:*:topic/fleet/{root}/*" },
            },
        });
        var setup = await CallAsync(
            ("create_thing_group", new { thingGroupName = root }),
            ("create_thing_group", new { thingGroupName = child, parentGroupName = root }),
            ("create_policy", new { policyName = policy, policyDocument = fleetPolicy }),
            ("attach_policy", new { policyName = policy, target = $"arn:aws:iot:us-east-1:000000000000:thinggroup/{root}" }),
            ("add_thing_to_thing_group", new { thingGroupName = child, thingName = device.ThingName }),
            ("list_targets_for_policy", new { policyName = policy }));
        Assert.All(setup, x => Assert.Equal(200, Status(x)));
        Assert.Contains(":thinggroup/" + root, Body(setup[5])["targets"]![0]!.GetValue<string>(), StringComparison.Ordinal);

        using var sub = ExternalTool.StartBackground("mosquitto_sub", [.. host.TlsArgs(device, version: "mqttv5"), "-t", topic, "-q", "1"]);
        await host.WaitSubscribedAsync(device.ThingName, sub);
        await PublishAsync(topic, "one");
        Assert.True(await sub.WaitForLineAsync(l => l == "one", Timeout, Ct), "not received under the group policy: " + string.Join('|', sub.Lines) + sub.Stderr);

        // Out of the group: the live subscription stops receiving at once.
        Assert.Equal(200, Status((await CallAsync(("remove_thing_from_thing_group", new { thingGroupName = child, thingName = device.ThingName })))[0]));
        await PublishAsync(topic, "two");
        Assert.False(await sub.WaitForLineAsync(l => l == "two", TimeSpan.FromSeconds(1), Ct), "received after leaving the group");

        // Back in the group: receiving again; the policy detached from the parent group: stopped.
        Assert.Equal(200, Status((await CallAsync(("add_thing_to_thing_group", new { thingGroupName = child, thingName = device.ThingName })))[0]));
        await PublishAsync(topic, "three");
        Assert.True(await sub.WaitForLineAsync(l => l == "three", Timeout, Ct), "not received after rejoining");
        Assert.Equal(200, Status((await CallAsync(("detach_policy", new { policyName = policy, target = $"arn:aws:iot:us-east-1:000000000000:thinggroup/{root}" })))[0]));
        await PublishAsync(topic, "four");
        Assert.False(await sub.WaitForLineAsync(l => l == "four", TimeSpan.FromSeconds(1), Ct), "received after the group policy was detached");
    }

    private async Task PublishAsync(string topic, string message)
    {
        var pub = await ExternalTool.RunAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("op")), "-t", topic, "-m", message, "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(pub.ExitCode == 0, pub.Output);
    }

    private static int Status(JsonNode? result) => result!["status"]!.GetValue<int>();

    private static JsonNode Body(JsonNode? result) => result!["body"] ?? throw new InvalidOperationException("no body: " + result.ToJsonString());

    private static (int, string?) Error(JsonNode? result) => (Status(result), result!["error"]?.GetValue<string>());

    private Task<JsonNode?[]> CallAsync(params (string Call, object Args)[] calls) => host.IotCallsAsync(calls, Ct);
}
