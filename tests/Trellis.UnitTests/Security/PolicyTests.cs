using Trellis.Security.Policies;

namespace Trellis.UnitTests.Security;

public sealed class PolicyTests
{
    private const string Region = "us-east-1";
    private const string Account = "000000000000";

    private static CompiledPolicySet Compile(string json, string clientId = "dev1", string? thing = "dev1")
    {
        Assert.True(PolicyDocument.TryParse(json, out var doc, out var error), error);
        var variables = new PolicyVariables { ["iot:ClientId"] = clientId };
        if (thing is not null)
        {
            variables["iot:Connection.Thing.ThingName"] = thing;
        }

        return CompiledPolicySet.Compile([doc!], variables, Region, Account);
    }

    [Fact]
    public void Thing_name_variable_limits_topics_to_the_device()
    {
        var policy = Compile("""
            {"Version":"2012-10-17","Statement":[
              {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"arn:aws:iot:us-east-1:000000000000:topic/d/${iot:Connection.Thing.ThingName}/*"},
              {"Effect":"Allow","Action":"iot:Subscribe","Resource":"arn:aws:iot:*:*:topicfilter/d/${iot:Connection.Thing.ThingName}/*"}]}
            """);

        Assert.True(policy.CanPublish("d/dev1/temp"));
        Assert.True(policy.CanPublish("d/dev1/a/b"));
        Assert.False(policy.CanPublish("d/dev2/temp"));
        Assert.True(policy.CanSubscribe("d/dev1/#"));
        Assert.False(policy.CanSubscribe("d/#"));
        Assert.False(policy.CanConnect("dev1"));
    }

    [Fact]
    public void Explicit_deny_wins_over_allow()
    {
        var policy = Compile("""
            {"Statement":[
              {"Effect":"Allow","Action":"iot:*","Resource":"*"},
              {"Effect":"Deny","Action":"iot:Publish","Resource":"arn:aws:iot:*:*:topic/secret/*"}]}
            """);

        Assert.True(policy.CanPublish("open/x"));
        Assert.False(policy.CanPublish("secret/x"));
        Assert.True(policy.CanReceive("secret/x"));
    }

    [Fact]
    public void Mqtt_wildcards_are_literal_in_policies()
    {
        var policy = Compile("""{"Statement":[{"Effect":"Allow","Action":"iot:Subscribe","Resource":"arn:aws:iot:*:*:topicfilter/a/+"}]}""");

        Assert.True(policy.CanSubscribe("a/+"));
        Assert.False(policy.CanSubscribe("a/b"));
    }

    [Fact]
    public void Question_mark_matches_one_character()
    {
        var policy = Compile("""{"Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/dev?"}]}""");

        Assert.True(policy.CanConnect("dev1"));
        Assert.False(policy.CanConnect("dev12"));
    }

    [Fact]
    public void Client_id_with_star_cannot_widen_a_policy()
    {
        var policy = Compile("""{"Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:*:*:topic/c/${iot:ClientId}"}]}""", clientId: "*");

        Assert.True(policy.CanPublish("c/*"));
        Assert.False(policy.CanPublish("c/other"));
    }

    [Fact]
    public void Unresolved_variable_matches_nothing()
    {
        var policy = Compile("""{"Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:*:*:topic/t/${iot:Connection.Thing.ThingName}"}]}""", thing: null);

        Assert.False(policy.CanPublish("t/"));
        Assert.False(policy.CanPublish("t/${iot:Connection.Thing.ThingName}"));
    }

    [Fact]
    public void Default_is_deny()
    {
        var policy = Compile("""{"Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:*:*:topic/a"}]}""");

        Assert.False(policy.CanPublish("b"));
        Assert.False(policy.CanReceive("a"));
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("[]")]
    [InlineData("""{"Statement":[]}""")]
    [InlineData("""{"Statement":[{"Effect":"Maybe","Action":"iot:Publish","Resource":"*"}]}""")]
    [InlineData("""{"Statement":[{"Effect":"Allow","Action":"Connect","Resource":"*"}]}""")]
    [InlineData("""{"Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/x"}]}""")]
    [InlineData("""{"Statement":[{"Effect":"Allow","Action":"iot:Publish"}]}""")]
    [InlineData("""{"Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"*","Condition":{}}]}""")]
    public void Malformed_documents_are_rejected_with_a_reason(string json)
    {
        Assert.False(PolicyDocument.TryParse(json, out _, out var error));
        Assert.NotEmpty(error);
    }

    [Fact]
    public void Actions_of_other_services_are_accepted_and_allow_nothing_here()
    {
        var policy = Compile("""{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["greengrass:*","s3:GetObject"],"Resource":"*"}]}""");
        Assert.False(policy.CanConnect("dev1"));
        Assert.False(policy.CanPublish("devices/dev1/x"));
        Assert.Contains("does not allow iot:Connect for client id 'dev1'", policy.ExplainConnect("dev1"), StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_iot_action_is_found_and_the_nearest_defined_one_suggested()
    {
        Assert.True(PolicyDocument.TryParse("""{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:Publish","iot:Subscrbe"],"Resource":"*"}]}""", out var document, out _));
        Assert.Equal("iot:Subscrbe", IotActionNames.FirstUnknown(document!));
        Assert.Equal("iot:Subscribe", IotActionNames.Closest("iot:Subscrbe"));
        Assert.True(PolicyDocument.TryParse("""{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:*","iot:Get*","iot:Describe?obExecution"],"Resource":"*"}]}""", out var patterns, out _));
        Assert.Null(IotActionNames.FirstUnknown(patterns!));
    }

    [Fact]
    public void Policy_check_allocates_nothing()
    {
        var policy = Compile("""{"Statement":[{"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"arn:aws:iot:*:*:topic/d/${iot:Connection.Thing.ThingName}/*"}]}""");
        for (var i = 0; i < 100; i++)
        {
            policy.CanPublish("d/dev1/temp");
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 10_000; i++)
        {
            policy.CanPublish("d/dev1/temp");
            policy.CanReceive("d/dev2/temp");
        }

        Assert.Equal(before, GC.GetAllocatedBytesForCurrentThread());
    }
}
