using System.Text.Json.Serialization;

namespace Trellis.Telemetry;

/// <summary>One measurement: a thing's measure at a time (epoch milliseconds).</summary>
public readonly record struct TelemetryPoint(long TimestampMs, string Thing, string Measure, double Value);

/// <summary>One bucket of a downsampled series; the API writes it as is, the start as <c>t</c>.</summary>
public sealed record TelemetryBucket([property: JsonPropertyName("t")] long StartMs, double? Avg, double? Min, double? Max, double? Sum, long Count, double? First, double? Last);
