using Trellis.Broker.Internal;
using Trellis.Broker.Protocol;

namespace Trellis.UnitTests.Broker;

public sealed class PublishSequencesTests
{
    private static UserProperty[] Seq(string stream, long seq) => [new("trellis-seq", $"{stream}:{seq}")];

    [Fact]
    public void A_number_is_taken_once_and_repeats_are_recognised()
    {
        var sequences = new PublishSequences();
        Assert.False(sequences.IsRepeat("gw", Seq("a", 1)));
        Assert.False(sequences.IsRepeat("gw", Seq("a", 2)));
        Assert.True(sequences.IsRepeat("gw", Seq("a", 1)));
        Assert.True(sequences.IsRepeat("gw", Seq("a", 2)));
        Assert.False(sequences.IsRepeat("gw", Seq("a", 3)));
    }

    [Fact]
    public void Numbers_that_arrive_out_of_order_or_with_gaps_are_each_taken_once()
    {
        var sequences = new PublishSequences();
        Assert.False(sequences.IsRepeat("gw", Seq("a", 10)));
        Assert.False(sequences.IsRepeat("gw", Seq("a", 7)));
        Assert.False(sequences.IsRepeat("gw", Seq("a", 9)));
        Assert.True(sequences.IsRepeat("gw", Seq("a", 7)));
        Assert.False(sequences.IsRepeat("gw", Seq("a", 8)));
        Assert.True(sequences.IsRepeat("gw", Seq("a", 10)));
    }

    [Fact]
    public void A_jump_past_the_window_forgets_what_it_covered_and_old_numbers_count_as_seen()
    {
        var sequences = new PublishSequences();
        Assert.False(sequences.IsRepeat("gw", Seq("a", 5)));
        Assert.False(sequences.IsRepeat("gw", Seq("a", 5 + 65_536 + 3)));
        Assert.True(sequences.IsRepeat("gw", Seq("a", 5)));
        Assert.False(sequences.IsRepeat("gw", Seq("a", 5 + 65_536)));
    }

    [Fact]
    public void Streams_and_clients_are_separate_and_unnumbered_messages_are_never_repeats()
    {
        var sequences = new PublishSequences();
        Assert.False(sequences.IsRepeat("gw", Seq("a", 1)));
        Assert.False(sequences.IsRepeat("other", Seq("a", 1)));
        Assert.False(sequences.IsRepeat("gw", Seq("b", 1)));
        Assert.False(sequences.IsRepeat("gw", null));
        Assert.False(sequences.IsRepeat("gw", [new UserProperty("trellis-seq", "no-number")]));
        Assert.False(sequences.IsRepeat("gw", [new UserProperty("other", "a:1")]));
    }

    [Fact]
    public void A_window_saved_and_restored_still_knows_its_numbers()
    {
        var sequences = new PublishSequences();
        sequences.IsRepeat("gw", Seq("a", 3));
        sequences.IsRepeat("gw", Seq("a", 1));
        var restored = new PublishSequences();
        foreach (var (client, stream, mark, seen) in sequences.Snapshot())
        {
            restored.Restore(client, stream, mark, seen);
        }

        Assert.True(restored.IsRepeat("gw", Seq("a", 1)));
        Assert.True(restored.IsRepeat("gw", Seq("a", 3)));
        Assert.False(restored.IsRepeat("gw", Seq("a", 2)));
    }
}
