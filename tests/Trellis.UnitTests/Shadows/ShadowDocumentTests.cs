using System.Text;
using System.Text.Json.Nodes;
using Trellis.Shadows;

namespace Trellis.UnitTests.Shadows;

public sealed class ShadowDocumentTests
{
    private static readonly ShadowOptions Options = new();

    private static ShadowUpdate Update(string json)
    {
        var error = ShadowRequest.ParseUpdate(Encoding.UTF8.GetBytes(json), Options, out var update, out _);
        Assert.Null(error);
        return update!;
    }

    private static ShadowError? Reject(string json) => ShadowRequest.ParseUpdate(Encoding.UTF8.GetBytes(json), Options, out _, out _);

    private static string Json(JsonNode? node) => node?.ToJsonString() ?? "null";

    [Fact]
    public void Nested_objects_merge_null_deletes_and_arrays_replace()
    {
        var doc = ShadowDocument.Absent()
            .Apply(Update("""{"state":{"desired":{"led":{"color":"red","level":3},"list":[1,2,3],"gone":true}}}"""), 100)
            .Apply(Update("""{"state":{"desired":{"led":{"level":5},"list":[9],"gone":null}}}"""), 200);

        Assert.Equal("""{"led":{"color":"red","level":5},"list":[9]}""", Json(doc.Desired));
        Assert.Equal(2, doc.Version);
        Assert.Equal(100, doc.DesiredMetadata!["led"]!["color"]!["timestamp"]!.GetValue<long>());
        Assert.Equal(200, doc.DesiredMetadata!["led"]!["level"]!["timestamp"]!.GetValue<long>());
        Assert.Null(doc.DesiredMetadata["gone"]);
    }

    [Fact]
    public void Desired_null_clears_the_section_and_empty_objects_disappear()
    {
        var doc = ShadowDocument.Absent()
            .Apply(Update("""{"state":{"desired":{"a":{"b":1}},"reported":{"x":1}}}"""), 1)
            .Apply(Update("""{"state":{"desired":{"a":{"b":null}}}}"""), 2);
        Assert.Null(doc.Desired);

        doc = doc.Apply(Update("""{"state":{"desired":{"c":1}}}"""), 3).Apply(Update("""{"state":{"desired":null}}"""), 4);
        Assert.Null(doc.Desired);
        Assert.Equal("""{"x":1}""", Json(doc.Reported));
        Assert.Equal(4, doc.Version);
    }

    [Fact]
    public void Delta_holds_desired_keys_missing_or_different_in_reported_with_full_paths()
    {
        var doc = ShadowDocument.Absent().Apply(Update("""
            {"state":{
              "desired":{"color":"red","cfg":{"a":1,"b":{"c":2,"d":3}},"same":5,"arr":[1,2]},
              "reported":{"color":"blue","cfg":{"a":1,"b":{"c":2,"d":4}},"same":5,"arr":[1,2],"onlyReported":1}}}
            """), 10);

        Assert.Equal("""{"color":"red","cfg":{"b":{"d":3}}}""", Json(doc.Delta()));
        Assert.Equal("""{"color":{"timestamp":10},"cfg":{"b":{"d":{"timestamp":10}}}}""", Json(doc.DeltaMetadata(doc.Delta()!)));

        var synced = doc.Apply(Update("""{"state":{"reported":{"color":"red","cfg":{"b":{"d":3}}}}}"""), 11);
        Assert.Null(synced.Delta());
    }

    [Fact]
    public void Delete_keeps_the_version_counting()
    {
        var doc = ShadowDocument.Absent().Apply(Update("""{"state":{"reported":{"a":1}}}"""), 1).Apply(Update("""{"state":{"reported":{"a":2}}}"""), 2);
        var deleted = doc.Deleted(3);
        Assert.False(deleted.Exists);
        Assert.Equal(2, deleted.Version);

        var recreated = deleted.Apply(Update("""{"state":{"reported":{"b":1}}}"""), 4);
        Assert.Equal(3, recreated.Version);
        Assert.Equal("""{"b":1}""", Json(recreated.Reported));
    }

    [Fact]
    public void Storage_round_trip_keeps_state_metadata_and_version()
    {
        var doc = ShadowDocument.Absent().Apply(Update("""{"state":{"desired":{"a":[1,{"b":2}]},"reported":{"c":"x"}}}"""), 7);
        var loaded = ShadowDocument.FromStorage(doc.ToStorageJson(), doc.Version, deleted: false);
        Assert.Equal(doc.ToStorageJson(), loaded.ToStorageJson());
        Assert.Equal(1, loaded.Version);
        Assert.True(loaded.Exists);
    }

    [Theory]
    [InlineData("not json", 400, "Invalid JSON")]
    [InlineData("[1,2]", 400, "Invalid JSON")]
    [InlineData("""{"clientToken":"t"}""", 400, "Missing required node: state")]
    [InlineData("""{"state":5}""", 400, "State node must be an object")]
    [InlineData("""{"state":{"desired":[1]}}""", 400, "Desired node must be an object")]
    [InlineData("""{"state":{"reported":"on"}}""", 400, "Reported node must be an object")]
    [InlineData("""{"state":{"delta":{"a":1}}}""", 400, "State contains an invalid node: 'delta'")]
    [InlineData("""{"state":{},"version":"3"}""", 400, "Invalid version")]
    [InlineData("""{"state":{},"version":-1}""", 400, "Invalid version")]
    [InlineData("""{"state":{},"clientToken":5}""", 400, "Invalid clientToken")]
    [InlineData("""{"state":{"desired":{"a":[1,null]}}}""", 400, "Arrays in the state may not contain null values")]
    [InlineData("""{"state":{"desired":{"a":{"b":{"c":{"d":{"e":{"f":{"g":1}}}}}}}}}""", 400, "JSON contains too many levels of nesting; maximum is 6")]
    public void Bad_updates_are_rejected_with_aws_codes_and_messages(string payload, int code, string message)
    {
        var error = Reject(payload);
        Assert.NotNull(error);
        Assert.Equal(code, error.Code);
        Assert.Equal(message, error.Message);
    }

    [Fact]
    public void Six_levels_are_allowed_and_long_tokens_and_payloads_are_not()
    {
        Assert.Null(Reject("""{"state":{"desired":{"a":{"b":{"c":{"d":{"e":{"f":1}}}}}}}}"""));
        Assert.Equal("Invalid clientToken", Reject($$"""{"state":{},"clientToken":"{{new string('t', 65)}}"}""")!.Message);
        Assert.Null(Reject($$"""{"state":{},"clientToken":"{{new string('t', 64)}}"}"""));
        Assert.Equal(413, Reject("{\"state\":{\"desired\":{\"big\":\"" + new string('x', 9000) + "\"}}}")!.Code);
        Assert.Equal(415, ShadowRequest.ParseUpdate([0x7B, 0xFF, 0x7D], Options, out _, out _)!.Code);
    }

    [Theory]
    [InlineData("$aws/things/lamp/shadow/update", "lamp", "", ShadowOperation.Update)]
    [InlineData("$aws/things/lamp/shadow/get", "lamp", "", ShadowOperation.Get)]
    [InlineData("$aws/things/lamp/shadow/name/cfg/delete", "lamp", "cfg", ShadowOperation.Delete)]
    public void Request_topics_parse(string topic, string thing, string name, ShadowOperation operation)
    {
        Assert.True(ShadowTopic.TryParseRequest(topic, out var key, out var op));
        Assert.Equal(new ShadowKey(thing, name), key);
        Assert.Equal(operation, op);
    }

    [Theory]
    [InlineData("$aws/things/lamp/shadow/update/accepted")]
    [InlineData("$aws/things/lamp/shadow/update/delta")]
    [InlineData("$aws/things/lamp/shadow/name//update")]
    [InlineData("$aws/things/lamp/jobs/get")]
    [InlineData("things/lamp/shadow/update")]
    public void Reply_and_other_topics_are_not_requests(string topic) =>
        Assert.False(ShadowTopic.TryParseRequest(topic, out _, out _));
}
