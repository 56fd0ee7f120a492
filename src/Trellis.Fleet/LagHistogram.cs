namespace Trellis.Fleet;

/// <summary>A Prometheus-style histogram of durations in seconds (cumulative buckets, sum, count), safe to record from one thread and read from others.</summary>
public sealed class LagHistogram
{
    public static readonly IReadOnlyList<double> Bounds = [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10];

    private readonly long[] _counts = new long[Bounds.Count + 1];
    private long _sumMicroseconds;

    /// <summary>The same durations for OpenTelemetry (exported as <c>trellis_fleet_index_lag_seconds</c> with <see cref="Bounds"/> as its buckets).</summary>
    private readonly System.Diagnostics.Metrics.Histogram<double> _instrument;

    /// <summary>
    /// <paramref name="meters"/>: the server's meter factory, so that each server in a process exports
    /// its own index's lag (without one, a meter of this histogram's own).
    /// </summary>
    public LagHistogram(System.Diagnostics.Metrics.IMeterFactory? meters = null)
    {
        var meter = meters?.Create(new System.Diagnostics.Metrics.MeterOptions("Trellis.Fleet")) ?? new System.Diagnostics.Metrics.Meter("Trellis.Fleet");
        _instrument = meter.CreateHistogram<double>("trellis.fleet.index.lag", "s", "From a change in the registry, a shadow or connectivity to its thing being searchable");
    }

    public void Record(double seconds)
    {
        _instrument.Record(seconds);
        var bucket = 0;
        while (bucket < Bounds.Count && seconds > Bounds[bucket])
        {
            bucket++;
        }

        Interlocked.Increment(ref _counts[bucket]);
        Interlocked.Add(ref _sumMicroseconds, (long)(seconds * 1e6));
    }

    /// <summary>Cumulative counts per upper bound (the last is +Inf), the sum in seconds, and the count.</summary>
    public (IReadOnlyList<(string UpperBound, long Count)> Buckets, double Sum, long Count) Snapshot()
    {
        var buckets = new List<(string, long)>();
        long running = 0;
        for (var i = 0; i < _counts.Length; i++)
        {
            running += Interlocked.Read(ref _counts[i]);
            buckets.Add((i < Bounds.Count ? Bounds[i].ToString(System.Globalization.CultureInfo.InvariantCulture) : "+Inf", running));
        }

        return (buckets, Interlocked.Read(ref _sumMicroseconds) / 1e6, running);
    }
}
