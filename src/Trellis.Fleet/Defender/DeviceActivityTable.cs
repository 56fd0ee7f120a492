using System.Collections.Concurrent;
using Trellis.Core.Monitoring;

namespace Trellis.Fleet.Defender;

/// <summary>
/// The counters of every client id the broker has seen, made on first use. Idle entries are forgotten
/// after the longest window, and the table never holds more than <see cref="MaxEntries"/> (a flood of
/// made-up client ids then shares one overflow entry instead of taking memory).
/// </summary>
public sealed class DeviceActivityTable(TimeProvider time) : IDeviceActivityTable
{
    public const int MaxEntries = 1_000_000;

    private readonly ConcurrentDictionary<string, DeviceActivity> _entries = new(StringComparer.Ordinal);
    private readonly DeviceActivity _overflow = new("$overflow", 0);

    public int Count => _entries.Count;

    public DeviceActivity For(string clientId)
    {
        if (_entries.TryGetValue(clientId, out var existing))
        {
            return existing;
        }

        return _entries.Count >= MaxEntries ? _overflow : _entries.GetOrAdd(clientId, id => new DeviceActivity(id, time.GetUtcNow().ToUnixTimeMilliseconds()));
    }

    internal List<DeviceActivity> Snapshot() => [.. _entries.Values];

    /// <summary>Forgets entries with no open connection idle since <paramref name="beforeMs"/>, except those in <paramref name="keep"/>; returns their ids.</summary>
    internal List<string> ForgetIdle(long beforeMs, HashSet<string> keep)
    {
        var forgotten = new List<string>();
        foreach (var (id, activity) in _entries)
        {
            if (activity.LastActiveMs < beforeMs && activity.OpenConnections <= 0 && !keep.Contains(id)
                && _entries.TryRemove(new KeyValuePair<string, DeviceActivity>(id, activity)))
            {
                forgotten.Add(id);
            }
        }

        return forgotten;
    }
}
