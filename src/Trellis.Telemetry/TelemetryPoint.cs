namespace Trellis.Telemetry;

/// <summary>One measurement: a thing's measure at a time (epoch milliseconds).</summary>
public readonly record struct TelemetryPoint(long TimestampMs, string Thing, string Measure, double Value);

/// <summary>One bucket of a downsampled series.</summary>
public sealed record TelemetryBucket(long StartMs, double? Avg, double? Min, double? Max, double? Sum, long Count, double? First, double? Last);
