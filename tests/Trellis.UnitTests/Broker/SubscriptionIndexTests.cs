using Trellis.Broker.Internal;
using Trellis.Broker.Protocol;

namespace Trellis.UnitTests.Broker;

public sealed class SubscriptionIndexTests
{
    private static List<string> Match(SubscriptionIndex index, string topic)
    {
        var found = new List<string>();
        var state = new Collector(found);
        index.Match(topic, ref state, static (ref Collector c, Subscriber s) => c.Found.Add(s.Session.ClientId + ":" + s.Options.Filter));
        return found;
    }

    private static void Add(SubscriptionIndex index, Session session, string filter, string? group = null, string? inner = null) =>
        index.Add(session, new TopicSubscription(filter, 1), group, inner ?? filter);

    [Fact]
    public void Exact_plus_and_hash_filters_match()
    {
        var index = new SubscriptionIndex();
        var a = new Session("a");
        Add(index, a, "s/1/t");
        Add(index, a, "s/+/t");
        Add(index, a, "s/#");
        Add(index, a, "x/#");

        Assert.Equal(["a:s/#", "a:s/+/t", "a:s/1/t"], Match(index, "s/1/t").Order(StringComparer.Ordinal));
        Assert.Equal(["a:s/#"], Match(index, "s"));
        Assert.Empty(Match(index, "t/1"));
    }

    [Fact]
    public void Wildcards_at_the_first_level_do_not_match_dollar_topics()
    {
        var index = new SubscriptionIndex();
        var a = new Session("a");
        Add(index, a, "#");
        Add(index, a, "+/events/x");
        Add(index, a, "$aws/events/#");

        Assert.Equal(["a:$aws/events/#"], Match(index, "$aws/events/x"));
        Assert.Equal(1, index.DollarCount);
    }

    [Fact]
    public void Shared_group_delivers_each_message_to_one_member()
    {
        var index = new SubscriptionIndex();
        Add(index, new Session("a"), "$share/g/jobs", "g", "jobs");
        Add(index, new Session("b"), "$share/g/jobs", "g", "jobs");

        var picks = Enumerable.Range(0, 10).Select(_ => Assert.Single(Match(index, "jobs"))).ToList();

        Assert.Contains("a:$share/g/jobs", picks);
        Assert.Contains("b:$share/g/jobs", picks);
    }

    [Fact]
    public void Remove_takes_the_subscription_out_and_prunes()
    {
        var index = new SubscriptionIndex();
        var a = new Session("a");
        Add(index, a, "s/+/t");

        Assert.True(index.Remove(a, null, "s/+/t"));

        Assert.Empty(Match(index, "s/1/t"));
        Assert.Equal(0, index.Count);
        Assert.False(index.Remove(a, null, "s/+/t"));
    }

    [Fact]
    public void Matching_allocates_nothing()
    {
        var index = new SubscriptionIndex();
        Add(index, new Session("a"), "sensors/+/temp");
        Add(index, new Session("b"), "sensors/#");
        var count = 0;
        for (var i = 0; i < 100; i++)
        {
            index.Match("sensors/d1/temp", ref count, static (ref int c, Subscriber _) => c++);
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 10_000; i++)
        {
            index.Match("sensors/d1/temp", ref count, static (ref int c, Subscriber _) => c++);
        }

        // Less than one byte per match: nothing is allocated per call (tiered JIT may allocate once).
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 10_000, "matching allocates per call");
        Assert.Equal(20_200, count);
    }

    private readonly record struct Collector(List<string> Found);
}
