using System.Threading.Channels;

namespace Trellis.Rules;

/// <summary>
/// A bounded in-memory queue with one worker thread that handles its items in order: what the alarms
/// and the notifications use so that the broker's threads only ever hand an item over. An item the
/// handler throws on is skipped (the handler logs it); the queue goes on.
/// </summary>
internal sealed class QueueWorker<T> : IAsyncDisposable
{
    private readonly Channel<T> _queue;
    private readonly Action<T> _handle;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _worker;

    public QueueWorker(int capacity, BoundedChannelFullMode whenFull, Action<T> handle)
    {
        _queue = Channel.CreateBounded<T>(new BoundedChannelOptions(capacity) { SingleReader = true, FullMode = whenFull });
        _handle = handle;
        _worker = Task.Run(RunAsync);
    }

    /// <summary>Queues an item; never blocks. False when the queue was full and the item was not taken (DropWrite).</summary>
    public bool TryWrite(T item) => _queue.Writer.TryWrite(item);

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _stopping.CancelAsync();
        try
        {
            await _worker.WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (TimeoutException)
        {
            // an item still being handled: it finishes on its own
        }

        _stopping.Dispose();
    }

    private async Task RunAsync()
    {
        try
        {
            await foreach (var item in _queue.Reader.ReadAllAsync(_stopping.Token))
            {
                _handle(item);
            }
        }
        catch (OperationCanceledException)
        {
            // stopping
        }
    }
}
