using System.Text;
using Trellis.Gateway.Forwarding;

namespace Trellis.UnitTests.Gateway;

public sealed class ForwardStoreTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("fwdstore").FullName;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private string PathOf => Path.Combine(_folder, "queue.db");

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static byte[] Bytes(string s) => Encoding.UTF8.GetBytes(s);

    [Fact]
    public async Task Appended_messages_survive_a_reopen_in_order_and_numbers_are_never_reused()
    {
        string stream;
        using (var store = new ForwardStore(PathOf))
        {
            stream = store.StreamId;
            for (var i = 1; i <= 5; i++)
            {
                await store.AppendAsync("t/" + i, Bytes("p" + i), "leaf", i, Ct);
            }

            store.Remove(1);
            store.Remove(2);
        }

        using (var store = new ForwardStore(PathOf))
        {
            Assert.Equal(stream, store.StreamId);
            Assert.Equal(3, store.Count);
            var messages = store.ReadAfter(0, 10);
            Assert.Equal([3L, 4L, 5L], messages.Select(m => m.Seq));
            Assert.Equal("t/3", messages[0].Topic);
            foreach (var m in messages)
            {
                store.Remove(m.Seq);
            }
        }

        using (var store = new ForwardStore(PathOf))
        {
            Assert.Equal(0, store.Count);
            await store.AppendAsync("t/6", Bytes("p6"), "leaf", 6, Ct);
            Assert.Equal(6, store.ReadAfter(0, 10).Single().Seq);
        }
    }

    [Fact]
    public async Task When_full_the_oldest_messages_are_dropped_and_counted()
    {
        using var store = new ForwardStore(PathOf, new ForwardStoreOptions { MaxBytes = 100, WhenFull = QueueFullPolicy.DropOldest });
        for (var i = 0; i < 10; i++)
        {
            await store.AppendAsync("t", new byte[19], "leaf", i, Ct); // 20 bytes each
        }

        Assert.Equal(5, store.Count);
        Assert.Equal(100, store.Bytes);
        Assert.Equal(5, store.Dropped);
        Assert.Equal([6L, 7L, 8L, 9L, 10L], store.ReadAfter(0, 10).Select(m => m.Seq));
    }

    [Fact]
    public async Task With_policy_hold_an_append_waits_until_forwarded_messages_make_room()
    {
        using var store = new ForwardStore(PathOf, new ForwardStoreOptions { MaxBytes = 40, WhenFull = QueueFullPolicy.Hold });
        await store.AppendAsync("t", new byte[19], "leaf", 1, Ct);
        await store.AppendAsync("t", new byte[19], "leaf", 2, Ct);
        var third = store.AppendAsync("t", new byte[19], "leaf", 3, Ct);
        await Task.Delay(200, Ct);
        Assert.False(third.IsCompleted);
        store.Remove(1);
        await third.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        Assert.Equal(0, store.Dropped);
        Assert.Equal([2L, 3L], store.ReadAfter(0, 10).Select(m => m.Seq));
    }

    [Fact]
    public async Task A_message_larger_than_the_whole_queue_is_refused()
    {
        using var store = new ForwardStore(PathOf, new ForwardStoreOptions { MaxBytes = 10 });
        await Assert.ThrowsAsync<QueueFullException>(() => store.AppendAsync("topic", new byte[10], "leaf", 1, Ct));
    }
}
