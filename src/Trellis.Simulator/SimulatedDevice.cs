using System.Text.Json.Nodes;

namespace Trellis.Simulator;

/// <summary>
/// One simulated device's behaviour: what it measures at a moment, what it reports about itself,
/// and how it applies desired state from its shadow. Every device obeys <c>samplingIntervalMs</c>.
/// </summary>
public abstract class SimulatedDevice(string thing, Random random, int intervalMs)
{
    public string Thing => thing;

    /// <summary>Milliseconds between two samples (the shadow's desired <c>samplingIntervalMs</c> changes it).</summary>
    public int IntervalMs { get; private set; } = intervalMs;

    /// <summary>The kind of device, reported in its shadow (trafficCounter, machine, wearable …).</summary>
    public abstract string Kind { get; }

    /// <summary>True for devices whose connection comes and goes (wearables).</summary>
    public virtual bool Intermittent => false;

    protected Random Random => random;

    /// <summary>One telemetry message.</summary>
    public abstract JsonObject Sample(DateTimeOffset now);

    /// <summary>What the device reports when it comes online.</summary>
    /// <summary>The firmware version the device runs (changed by an OTA update).</summary>
    public string Firmware { get; set; } = "1.0.0";

    public virtual JsonObject Reported() => new() { ["kind"] = Kind, ["samplingIntervalMs"] = IntervalMs, ["firmware"] = Firmware };

    /// <summary>Applies a shadow delta; returns the state to report back (what it applied).</summary>
    public virtual JsonObject Apply(JsonObject delta)
    {
        ArgumentNullException.ThrowIfNull(delta);
        var applied = new JsonObject();
        if (delta["samplingIntervalMs"] is JsonValue v && v.TryGetValue<int>(out var ms) && ms is >= 100 and <= 3_600_000)
        {
            IntervalMs = ms;
            applied["samplingIntervalMs"] = ms;
        }

        return applied;
    }

    /// <summary>Normal noise (Box–Muller).</summary>
    protected double Noise(double sigma) =>
        sigma * Math.Sqrt(-2 * Math.Log(1 - Random.NextDouble())) * Math.Cos(2 * Math.PI * Random.NextDouble());

    /// <summary>Hour of the day in local time, with fractions.</summary>
    protected static double HourOf(DateTimeOffset now) => now.ToLocalTime().TimeOfDay.TotalHours;

    protected static double Round(double value, int digits = 2) => Math.Round(value, digits);
}
