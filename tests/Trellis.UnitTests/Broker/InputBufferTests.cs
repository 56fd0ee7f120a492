using System.Buffers;
using Trellis.Broker.Hosting;

namespace Trellis.UnitTests.Broker;

public sealed class InputBufferTests
{
    private static void Write(InputBuffer buffer, ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty)
        {
            var memory = buffer.GetMemory(16);
            var n = Math.Min(memory.Length, data.Length);
            data[..n].CopyTo(memory.Span);
            buffer.Advance(n);
            data = data[n..];
        }
    }

    [Fact]
    public async Task A_reader_that_consumes_part_of_each_read_gets_the_stream_unchanged_across_compactions_and_growth()
    {
        var random = new Random(7);
        var sent = new byte[300_000];
        random.NextBytes(sent);
        var buffer = new InputBuffer(minimumRent: 64, pauseThreshold: 1 << 30, resumeThreshold: 1 << 29);
        var received = new List<byte>();
        var readerRandom = new Random(11);

        // The reader consumes a random part of what it sees and marks everything examined, holding the rest
        // while the writer goes on (a packet split across receives).
        var reader = Task.Run(async () =>
        {
            while (true)
            {
                var result = await buffer.ReadAsync(TestContext.Current.CancellationToken);
                var take = result.IsCompleted ? result.Buffer.Length : readerRandom.NextInt64(0, result.Buffer.Length + 1);
                received.AddRange(result.Buffer.Slice(0, take).ToArray());
                buffer.AdvanceTo(result.Buffer.GetPosition(take), result.Buffer.End);
                if (result.IsCompleted)
                {
                    return;
                }
            }
        }, TestContext.Current.CancellationToken);

        var offset = 0;
        while (offset < sent.Length)
        {
            var chunk = Math.Min(sent.Length - offset, random.Next(1, 5000));
            Write(buffer, sent.AsSpan(offset, chunk));
            offset += chunk;
            var flush = await buffer.FlushAsync();
            Assert.False(flush.IsCompleted);
        }

        buffer.CompleteWriter();
        await reader.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        Assert.Equal(sent, received.ToArray());
    }

    [Fact]
    public async Task A_flush_waits_past_the_pause_threshold_until_the_reader_drops_under_the_resume_threshold()
    {
        var buffer = new InputBuffer(minimumRent: 64, pauseThreshold: 1000, resumeThreshold: 500);
        Write(buffer, new byte[999]);
        Assert.False((await buffer.FlushAsync()).IsCompleted);

        Write(buffer, new byte[2]);
        var paused = buffer.FlushAsync();
        Assert.False(paused.IsCompleted);

        var result = await buffer.ReadAsync(TestContext.Current.CancellationToken);
        Assert.Equal(1001, result.Buffer.Length);
        buffer.AdvanceTo(result.Buffer.GetPosition(400)); // examined only what was consumed: the next read returns the rest
        Assert.False(paused.IsCompleted); // 601 unread: still above 500

        result = await buffer.ReadAsync(TestContext.Current.CancellationToken);
        buffer.AdvanceTo(result.Buffer.GetPosition(200), result.Buffer.End);
        var flush = await paused.AsTask().WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        Assert.False(flush.IsCompleted);
    }

    [Fact]
    public async Task A_read_waits_for_data_past_what_was_examined_and_a_flush_runs_it_inline()
    {
        var buffer = new InputBuffer(minimumRent: 64, pauseThreshold: 1000, resumeThreshold: 500);
        Write(buffer, "abc"u8);
        await buffer.FlushAsync();
        var result = await buffer.ReadAsync(TestContext.Current.CancellationToken);
        buffer.AdvanceTo(result.Buffer.Start, result.Buffer.End); // a partial packet: nothing consumed

        var flusher = Environment.CurrentManagedThreadId;
        var readerThread = 0;
        async Task<byte[]> ReadOnce()
        {
            var next = await buffer.ReadAsync(TestContext.Current.CancellationToken);
            readerThread = Environment.CurrentManagedThreadId;
            var bytes = next.Buffer.ToArray();
            buffer.AdvanceTo(next.Buffer.End);
            return bytes;
        }

        var seen = ReadOnce();
        Assert.False(seen.IsCompleted);
        Write(buffer, "de"u8);
        await buffer.FlushAsync();
        Assert.True(seen.IsCompleted); // the reader ran inside the flush
        Assert.Equal(flusher, readerThread);
        Assert.Equal("abcde"u8.ToArray(), await seen);
    }

    [Fact]
    public async Task Cancel_and_the_writers_end_reach_a_waiting_reader_and_a_completed_reader_releases_a_paused_writer()
    {
        var buffer = new InputBuffer(minimumRent: 64, pauseThreshold: 10, resumeThreshold: 5);
        var pending = buffer.ReadAsync(TestContext.Current.CancellationToken);
        buffer.CancelPendingRead();
        var canceled = await pending;
        Assert.True(canceled.IsCanceled);
        buffer.AdvanceTo(canceled.Buffer.Start);

        Write(buffer, new byte[20]);
        var paused = buffer.FlushAsync();
        Assert.False(paused.IsCompleted);
        await buffer.CompleteAsync();
        var flush = await paused.AsTask().WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        Assert.True(flush.IsCompleted); // the reader is gone: the socket reader stops

        var other = new InputBuffer(minimumRent: 64, pauseThreshold: 10, resumeThreshold: 5);
        var waiting = other.ReadAsync(TestContext.Current.CancellationToken);
        other.CompleteWriter();
        Assert.True((await waiting).IsCompleted);
    }

    [Fact]
    public void Reading_an_empty_buffer_without_waiting_finds_nothing()
    {
        var buffer = new InputBuffer(minimumRent: 64, pauseThreshold: 10, resumeThreshold: 5);
        Assert.False(buffer.TryRead(out _));
        Write(buffer, "x"u8);
        buffer.ReleaseWriter(); // written but not flushed: not visible yet
        Assert.False(buffer.TryRead(out _));
    }
}
