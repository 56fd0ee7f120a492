using System.Runtime;
using Microsoft.Extensions.Logging;

namespace Trellis.Broker.Internal;

/// <summary>
/// Gives memory back after a burst of connections. Each connection's objects are allocated among
/// the connect path's short-lived ones; after thousands of connects the survivors sit spread over
/// more of the heap than they fill, and the collector keeps that room (and a generous allocation
/// budget) committed while the server is idle; after thousands of disconnects the room is simply
/// free. Once the connection count has held still for a few seconds and differs from the count at
/// the last settle by at least a quarter (and 1 000 connections), one compacting full collection
/// packs the survivors and decommits the rest. It runs at most once every 10 s, and never while
/// connections keep coming or going (the collector's own rhythm is right for a busy server).
/// </summary>
internal sealed class HeapSettler(int quietSeconds, ILogger logger)
{
    private const int MinChange = 1000;
    private const long MinIntervalMs = 10_000;

    private int _lastCount = -1;
    private int _settledCount;
    private long _stillSinceMs;
    private long _settledAtMs = long.MinValue / 2;

    public void Tick(int connections, long nowMs)
    {
        if (quietSeconds <= 0)
        {
            return;
        }

        if (connections != _lastCount)
        {
            _lastCount = connections;
            _stillSinceMs = nowMs;
            return;
        }

        var change = Math.Abs(connections - _settledCount);
        if (nowMs - _stillSinceMs < quietSeconds * 1000L || nowMs - _settledAtMs < MinIntervalMs
            || change < MinChange || change < Math.Max(connections, _settledCount) / 4)
        {
            return;
        }

        var before = Environment.WorkingSet;
        var started = Environment.TickCount64;
        GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        Hosting.Native.TrimNativeHeap();
        var took = Environment.TickCount64 - started;
        _settledCount = connections;
        _settledAtMs = nowMs;
        logger.HeapSettled(connections, before >> 20, Environment.WorkingSet >> 20, took);
    }
}
