using Trellis.Core.Topics;

namespace Trellis.UnitTests.Core;

public sealed class TopicMatcherTests
{
    [Theory]
    [InlineData("a/b/c", "a/b/c", true)]
    [InlineData("a/+/c", "a/b/c", true)]
    [InlineData("a/+/c", "a/b/d", false)]
    [InlineData("a/#", "a/b/c", true)]
    [InlineData("a/#", "a", true)]
    [InlineData("#", "a/b", true)]
    [InlineData("+", "a", true)]
    [InlineData("+", "a/b", false)]
    [InlineData("+/+", "/a", true)]
    [InlineData("#", "$SYS/x", false)]
    [InlineData("+/x", "$aws/x", false)]
    [InlineData("$aws/#", "$aws/events/x", true)]
    [InlineData("a/b", "a/b/c", false)]
    [InlineData("a/b/c", "a/b", false)]
    [InlineData("a//c", "a//c", true)]
    public void Matches_follows_mqtt_wildcard_rules(string filter, string topic, bool expected) =>
        Assert.Equal(expected, TopicMatcher.Matches(filter, topic));

    [Theory]
    [InlineData("a/b", true)]
    [InlineData("a/+/b", true)]
    [InlineData("a/#", true)]
    [InlineData("#", true)]
    [InlineData("a/#/b", false)]
    [InlineData("a/b#", false)]
    [InlineData("a/b+", false)]
    [InlineData("", false)]
    public void Topic_filter_validation(string filter, bool valid) =>
        Assert.Equal(valid, TopicValidator.IsValidTopicFilter(filter));

    [Theory]
    [InlineData("a/b", true)]
    [InlineData("a/+", false)]
    [InlineData("a/#", false)]
    [InlineData("", false)]
    [InlineData("a\0b", false)]
    public void Topic_name_validation(string topic, bool valid) =>
        Assert.Equal(valid, TopicValidator.IsValidTopicName(topic));

    [Fact]
    public void Shared_subscription_is_split_into_group_and_filter()
    {
        Assert.True(SharedSubscription.TryParse("$share/g1/sensors/+", out var group, out var filter, out var valid));
        Assert.True(valid);
        Assert.Equal("g1", group);
        Assert.Equal("sensors/+", filter);
        Assert.True(SharedSubscription.TryParse("$share/g+/x", out _, out _, out var invalid));
        Assert.False(invalid);
    }

    [Fact]
    public void Matching_allocates_nothing()
    {
        for (var i = 0; i < 100; i++)
        {
            TopicMatcher.Matches("sensors/+/temp/#", "sensors/dev1/temp/a/b");
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 10_000; i++)
        {
            TopicMatcher.Matches("sensors/+/temp/#", "sensors/dev1/temp/a/b");
        }

        Assert.Equal(before, GC.GetAllocatedBytesForCurrentThread());
    }
}
