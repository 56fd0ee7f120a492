using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Trellis.Rules;

/// <summary>
/// Delivers the outbox: one loop per target, oldest message first. A failure pauses that target
/// (1 s, doubling up to <see cref="OutboxOptions.MaxBackoff"/>) and retries the same message, so
/// order is kept; a message older than <see cref="OutboxOptions.MaxAge"/> expires to its rule's
/// errorAction. Other targets are not held up.
/// </summary>
public sealed partial class OutboxDispatcher(Outbox outbox, Func<string, IConnector> connectorFor, Func<OutboxEntry, string, Task> expired, ILogger<OutboxDispatcher> logger) : IAsyncDisposable
{
    private const int BatchSize = 100;
    private readonly ConcurrentDictionary<string, (SemaphoreSlim Signal, Task Loop)> _loops = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, IConnector> _connectors = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, CancellationTokenSource> _backoffs = new(StringComparer.Ordinal);
    private CancellationToken _stopping;
    private long _delivered;
    private long _expired;

    public long Delivered => Interlocked.Read(ref _delivered);

    public long Expired => Interlocked.Read(ref _expired);

    /// <summary>Starts delivering what waits from the last run, and whatever is stored from now on.</summary>
    public void Start(CancellationToken stopping)
    {
        _stopping = stopping;
        outbox.Enqueued += Wake;
        outbox.RetryRequested += CutBackoff;
        foreach (var target in outbox.Targets())
        {
            Wake(target);
        }
    }

    public async ValueTask DisposeAsync()
    {
        outbox.Enqueued -= Wake;
        outbox.RetryRequested -= CutBackoff;
        try
        {
            await Task.WhenAll(_loops.Values.Select(l => l.Loop));
        }
        catch (OperationCanceledException)
        {
        }

        foreach (var connector in _connectors.Values)
        {
            await connector.DisposeAsync();
        }
    }

    private void Wake(string target)
    {
        var loop = _loops.GetOrAdd(target, t =>
        {
            var signal = new SemaphoreSlim(0);
            return (signal, Task.Run(() => RunAsync(t, signal)));
        });
        if (loop.Signal.CurrentCount == 0)
        {
            loop.Signal.Release();
        }
    }

    /// <summary>An operator's "retry now": the target's pause ends at once (its loop then tries the oldest message).</summary>
    private void CutBackoff(string target)
    {
        if (_backoffs.TryGetValue(target, out var pause))
        {
            try
            {
                pause.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // the pause had just ended
            }
        }
    }

    /// <summary>Waits out a back-off unless an operator asks for a retry first.</summary>
    private async Task PauseAsync(string target, string display, TimeSpan backoff)
    {
        using var pause = CancellationTokenSource.CreateLinkedTokenSource(_stopping);
        _backoffs[target] = pause;
        try
        {
            await Task.Delay(backoff, pause.Token);
        }
        catch (OperationCanceledException) when (!_stopping.IsCancellationRequested)
        {
            LogRetryNow(logger, display);
        }
        finally
        {
            _backoffs.TryRemove(new KeyValuePair<string, CancellationTokenSource>(target, pause));
        }
    }

    private async Task RunAsync(string target, SemaphoreSlim signal)
    {
        var connector = _connectors.GetOrAdd(target, connectorFor);
        var display = Outbox.Display(target);
        var backoff = TimeSpan.Zero;
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                var batch = outbox.Peek(target, BatchSize);
                if (batch.Count == 0)
                {
                    await signal.WaitAsync(_stopping);
                    continue;
                }

                var fresh = new List<OutboxEntry>(batch.Count);
                foreach (var entry in batch)
                {
                    if (fresh.Count == 0 && outbox.IsExpired(entry))
                    {
                        Interlocked.Increment(ref _expired);
                        await expired(entry, $"not delivered to {entry.Address} within {outbox.Options.MaxAge}");
                        outbox.Remove(entry);
                        continue;
                    }

                    fresh.Add(entry);
                }

                if (fresh.Count == 0)
                {
                    continue;
                }

                var (delivered, error) = await connector.SendAsync(fresh, _stopping);
                foreach (var entry in fresh.Take(delivered))
                {
                    outbox.Remove(entry);
                }

                Interlocked.Add(ref _delivered, delivered);
                if (delivered > 0)
                {
                    outbox.RecordDelivered(target, delivered);
                }

                if (error is null)
                {
                    backoff = TimeSpan.Zero;
                    continue;
                }

                backoff = backoff == TimeSpan.Zero ? TimeSpan.FromSeconds(1) : TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, outbox.Options.MaxBackoff.Ticks));
                outbox.RecordFailure(target, error, DateTimeOffset.UtcNow.Add(backoff).ToUnixTimeMilliseconds());
                LogDeliveryFailed(logger, display, error, outbox.Waiting(target), backoff.TotalSeconds);
                await PauseAsync(target, display, backoff);
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is Microsoft.Data.Sqlite.SqliteException or InvalidOperationException)
            {
                LogDeliveryFailed(logger, display, e.Message, outbox.Waiting(target), 5);
                await Task.Delay(TimeSpan.FromSeconds(5), _stopping);
            }
        }
    }

    [LoggerMessage(EventId = 6101, Level = LogLevel.Warning, Message = "Rule target {Target} is not taking messages ({Error}); {Waiting} wait in the outbox, in order. Retrying in {Seconds} s (`trellis outbox retry` tries now, `trellis outbox purge` discards them).")]
    private static partial void LogDeliveryFailed(ILogger logger, string target, string error, long waiting, double seconds);

    [LoggerMessage(EventId = 6102, Level = LogLevel.Information, Message = "Outbox target {Target}: retrying now, as asked.")]
    private static partial void LogRetryNow(ILogger logger, string target);
}
