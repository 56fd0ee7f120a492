namespace Trellis.Fleet;

/// <summary>
/// The fleet index's lag: from a change in the registry, a shadow or connectivity to its thing being
/// searchable, in seconds, exported as <c>trellis_fleet_index_lag_seconds</c> with <see cref="Bounds"/>
/// as its buckets.
/// </summary>
public sealed class LagHistogram
{
    public static readonly IReadOnlyList<double> Bounds = [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10];

    private readonly System.Diagnostics.Metrics.Histogram<double>? _instrument;

    /// <summary>
    /// <paramref name="meters"/>: the server's meter factory, so that each server in a process exports
    /// its own index's lag, in a meter the factory owns and disposes. Without one (a host without
    /// metrics) nothing is recorded.
    /// </summary>
    public LagHistogram(System.Diagnostics.Metrics.IMeterFactory? meters = null)
    {
        _instrument = meters?.Create(new System.Diagnostics.Metrics.MeterOptions("Trellis.Fleet")).CreateHistogram<double>("trellis.fleet.index.lag", "s", "From a change in the registry, a shadow or connectivity to its thing being searchable");
    }

    public void Record(double seconds) => _instrument?.Record(seconds);
}
