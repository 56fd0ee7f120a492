using Trellis.Registry.Provisioning;

namespace Trellis.UnitTests.Registry;

public sealed class TemplateDocumentTests
{
    private static ResolvedTemplate Resolve(string body, params (string Name, string Value)[] parameters)
    {
        var parsed = TemplateDocument.Parse(body);
        Assert.True(parsed.IsSuccess, parsed.Error?.Message);
        var resolved = parsed.Value!.Resolve(parameters.ToDictionary(p => p.Name, p => p.Value));
        Assert.True(resolved.IsSuccess, resolved.Error?.Message);
        return resolved.Value!;
    }

    [Fact]
    public void Intrinsic_functions_compute_names_attributes_and_configuration()
    {
        var resolved = Resolve("""
            {"Parameters": {"Serial": {"Type": "String"}, "Location": {"Type": "String", "Default": "lyon/b2/f3"}, "Tier": {"Type": "String", "Default": "gold"}},
             "Mappings": {"Tiers": {"gold": {"Group": "premium"}}},
             "Conditions": {"IsGold": {"Fn::Equals": [{"Ref": "Tier"}, "gold"]}, "NotGold": {"Fn::Not": [{"Condition": "IsGold"}]}},
             "Resources": {
               "thing": {"Type": "AWS::IoT::Thing", "Properties": {
                 "ThingName": {"Fn::Join": ["-", ["dev", {"Ref": "Serial"}]]},
                 "AttributePayload": {"site": {"Fn::Select": [0, {"Fn::Split": ["/", {"Ref": "Location"}]}]}, "floor": {"Fn::Select": ["2", {"Fn::Split": ["/", {"Ref": "Location"}]}]}},
                 "ThingGroups": [{"Fn::FindInMap": ["Tiers", {"Ref": "Tier"}, "Group"]}]}},
               "extra": {"Type": "AWS::IoT::Policy", "Condition": "NotGold", "Properties": {"PolicyName": "basic"}},
               "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": {"Fn::If": ["IsGold", "gold-policy", "basic"]}}}},
             "DeviceConfiguration": {"topic": {"Fn::Sub": "dt/${Serial}/data"}, "plain": {"Fn::Sub": ["${a}-${Serial}", {"a": "x"}]}}}
            """, ("Serial", "42"));
        Assert.Equal("dev-42", resolved.Thing!.Name);
        Assert.Equal("lyon", resolved.Thing.Attributes!["site"]);
        Assert.Equal("f3", resolved.Thing.Attributes["floor"]);
        Assert.Equal(["premium"], resolved.Thing.Groups!);
        Assert.Equal("gold-policy", Assert.Single(resolved.Policies).Name);
        Assert.Equal("x-42", resolved.DeviceConfiguration["plain"]);
        Assert.Equal("dt/42/data", resolved.DeviceConfiguration["topic"]);
    }

    [Theory]
    [InlineData("""{"Resources":{"t":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Ref":"Nope"}}}}}""", "refers to 'Nope'")]
    [InlineData("""{"Resources":{"t":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Fn::Sub":"a-${Nope}"}}}}}""", "refers to 'Nope'")]
    [InlineData("""{"Resources":{"t":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":"a","Colour":"red"}}}}""", "Colour is not a property")]
    [InlineData("""{"Resources":{"t":{"Type":"AWS::IoT::Thing","Properties":{"AttributePayload":{}}}}}""", "needs ThingName")]
    [InlineData("""{"Resources":{"t":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Fn::FindInMap":["M","a","b"]}}}}}""", "no map 'M'")]
    [InlineData("""{"Resources":{"t":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Fn::Equals":["a","b"]}}}}}""", "only allowed in Conditions")]
    [InlineData("""{"Resources":{"t":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Fn::Join":["-"]}}}}}""", "list of 2 arguments")]
    [InlineData("""{"Resources":{"t":{"Type":"AWS::IoT::Thing","OverrideSettings":{"ThingName":"MERGE"},"Properties":{"ThingName":"a"}}}}""", "OverrideSettings.ThingName")]
    [InlineData("""{"Resources":{"a":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":"a"}},"b":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":"b"}}}}""", "at most one AWS::IoT::Thing")]
    [InlineData("""{"Resources":{}}""", "Resources is required")]
    [InlineData("""{"Parameters":{"p":{"Type":"Blob"}},"Resources":{"t":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":"a"}}}}""", "Parameters.p.Type")]
    [InlineData("""{"Outputs":{},"Resources":{"t":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":"a"}}}}""", "unknown top-level section 'Outputs'")]
    public void Mistakes_are_refused_at_parse_time_naming_the_place(string body, string expected)
    {
        var parsed = TemplateDocument.Parse(body);
        Assert.False(parsed.IsSuccess);
        Assert.Contains(expected, parsed.Error!.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parameter_values_are_checked_when_applied()
    {
        var parsed = TemplateDocument.Parse("""
            {"Parameters": {"Serial": {"Type": "String"}, "Count": {"Type": "Number"}},
             "Resources": {"t": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Fn::Select": [{"Ref": "Count"}, ["a", "b"]]}}}}}
            """).Value!;
        Assert.Contains("'Serial' has no value", parsed.Resolve(new Dictionary<string, string> { ["Count"] = "1" }).Error!.Message, StringComparison.Ordinal);
        Assert.Contains("is a Number", parsed.Resolve(new Dictionary<string, string> { ["Serial"] = "s", ["Count"] = "one" }).Error!.Message, StringComparison.Ordinal);
        Assert.Contains("outside the list", parsed.Resolve(new Dictionary<string, string> { ["Serial"] = "s", ["Count"] = "5" }).Error!.Message, StringComparison.Ordinal);
        Assert.Equal("b", parsed.Resolve(new Dictionary<string, string> { ["Serial"] = "s", ["Count"] = "1", ["Ignored"] = "x" }).Value!.Thing!.Name);
    }
}
