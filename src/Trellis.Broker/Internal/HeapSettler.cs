using System.Runtime;
using Microsoft.Extensions.Logging;

namespace Trellis.Broker.Internal;

/// <summary>
/// Gives memory back after a burst of connections. Each connection's objects are allocated among
/// the connect path's short-lived ones; after thousands of connects the survivors sit spread over
/// more of the heap than they fill, and the collector keeps that room (and a generous allocation
/// budget) committed while the server is idle. Once the connection count has held still for a few
/// seconds and the heap's committed memory has grown by a quarter (at least 16 MiB) since the last
/// settle, one compacting full collection packs the survivors and decommits the rest. It runs at
/// most once a minute, and never while connections keep coming or going (the collector's own
/// rhythm is right for a busy server).
/// </summary>
internal sealed class HeapSettler(int quietSeconds, ILogger logger)
{
    private const long MinGrowthBytes = 16L << 20;
    private const long MinIntervalMs = 60_000;

    private int _lastCount = -1;
    private long _stillSinceMs;
    private long _settledAtMs = long.MinValue / 2;
    private long _committedAfterSettle = GC.GetGCMemoryInfo().TotalCommittedBytes;

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

        if (nowMs - _stillSinceMs < quietSeconds * 1000L || nowMs - _settledAtMs < MinIntervalMs)
        {
            return;
        }

        var committed = GC.GetGCMemoryInfo().TotalCommittedBytes;
        if (committed - _committedAfterSettle < Math.Max(MinGrowthBytes, _committedAfterSettle / 4))
        {
            return;
        }

        var started = Environment.TickCount64;
        GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        _committedAfterSettle = GC.GetGCMemoryInfo().TotalCommittedBytes;
        _settledAtMs = nowMs;
        logger.HeapSettled(connections, committed >> 20, _committedAfterSettle >> 20, Environment.TickCount64 - started);
    }
}
