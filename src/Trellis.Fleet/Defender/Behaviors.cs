using System.Globalization;
using System.Net;
using System.Text.Json.Serialization;
using Trellis.Core.Errors;

namespace Trellis.Fleet.Defender;

/// <summary>A behavior of a security profile (AWS's Behavior shape): what is normal for one metric.</summary>
public sealed record Behavior(
    string Name,
    string? Metric,
    MetricDimension? MetricDimension,
    BehaviorCriteria? Criteria,
    bool? SuppressAlerts,
    bool? ExportMetric);

public sealed record MetricDimension(string DimensionName, string? Operator);

/// <summary>The criteria under which a device is behaving normally; a datapoint outside them is a violation.</summary>
public sealed record BehaviorCriteria(
    string? ComparisonOperator,
    MetricValue? Value,
    int? DurationSeconds,
    int? ConsecutiveDatapointsToAlarm,
    int? ConsecutiveDatapointsToClear,
    string? Statistic,
    string? MlConfidenceLevel);

/// <summary>A metric's value (AWS's MetricValue): a count, a number, or a set of addresses, ports, numbers or strings.</summary>
public sealed record MetricValue(
    long? Count,
    IReadOnlyList<string>? Cidrs,
    IReadOnlyList<int>? Ports,
    double? Number,
    IReadOnlyList<double>? Numbers,
    IReadOnlyList<string>? Strings);

/// <summary>How a metric is measured, which decides its operators and how its datapoints come.</summary>
public enum MetricKind
{
    /// <summary>Cloud-side: a count of events over durationSeconds (one datapoint per device per window).</summary>
    WindowCount,

    /// <summary>Cloud-side: the size of each message the device sends.</summary>
    MessageSize,

    /// <summary>Cloud-side: the address each connection comes from.</summary>
    SourceAddress,

    /// <summary>Device-side: a number in each metrics report.</summary>
    ReportedNumber,

    /// <summary>Device-side: a set of ports in each metrics report.</summary>
    ReportedPorts,

    /// <summary>Device-side: a set of addresses in each metrics report.</summary>
    ReportedAddresses,
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(List<Behavior>))]
[JsonSerializable(typeof(Behavior))]
[JsonSerializable(typeof(MetricValue))]
[JsonSerializable(typeof(SecurityProfileDefinition))]
internal sealed partial class DefenderJson : JsonSerializerContext;

/// <summary>The metrics Trellis measures, with their kind, and the rules a behavior on them must follow.</summary>
public static class DefenderMetrics
{
    public static readonly IReadOnlyDictionary<string, MetricKind> Known = new Dictionary<string, MetricKind>(StringComparer.Ordinal)
    {
        ["aws:num-messages-sent"] = MetricKind.WindowCount,
        ["aws:num-messages-received"] = MetricKind.WindowCount,
        ["aws:num-authorization-failures"] = MetricKind.WindowCount,
        ["aws:num-connection-attempts"] = MetricKind.WindowCount,
        ["aws:num-disconnects"] = MetricKind.WindowCount,
        ["aws:message-byte-size"] = MetricKind.MessageSize,
        ["aws:source-ip-address"] = MetricKind.SourceAddress,
        ["aws:all-bytes-out"] = MetricKind.ReportedNumber,
        ["aws:all-bytes-in"] = MetricKind.ReportedNumber,
        ["aws:all-packets-out"] = MetricKind.ReportedNumber,
        ["aws:all-packets-in"] = MetricKind.ReportedNumber,
        ["aws:num-listening-tcp-ports"] = MetricKind.ReportedNumber,
        ["aws:num-listening-udp-ports"] = MetricKind.ReportedNumber,
        ["aws:num-established-tcp-connections"] = MetricKind.ReportedNumber,
        ["aws:listening-tcp-ports"] = MetricKind.ReportedPorts,
        ["aws:listening-udp-ports"] = MetricKind.ReportedPorts,
        ["aws:destination-ip-addresses"] = MetricKind.ReportedAddresses,
    };

    private static readonly string[] NumberOperators = ["less-than", "less-than-equals", "greater-than", "greater-than-equals"];
    private static readonly string[] CidrOperators = ["in-cidr-set", "not-in-cidr-set"];
    private static readonly string[] PortOperators = ["in-port-set", "not-in-port-set"];
    private static readonly string[] Statistics = ["p0", "p0.1", "p0.01", "p1", "p10", "p50", "p90", "p99", "p99.9", "p99.99", "p100"];

    /// <summary>The longest window a behavior may count over (AWS's longest is one hour).</summary>
    public const int MaxDurationSeconds = 3600;

    /// <summary>Every reason the behaviors are refused, each naming the behavior; empty when they are valid.</summary>
    public static List<string> Validate(IReadOnlyList<Behavior> behaviors)
    {
        var errors = new List<string>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var behavior in behaviors)
        {
            if (!names.Add(behavior.Name))
            {
                errors.Add($"Behavior '{behavior.Name}' appears twice: behavior names are unique within a security profile.");
                continue;
            }

            if (ValidateOne(behavior) is { } error)
            {
                errors.Add($"Behavior '{behavior.Name}': {error}");
            }
        }

        return errors;
    }

    private static string? ValidateOne(Behavior behavior)
    {
        if (behavior.Metric is null)
        {
            return "give the metric it watches.";
        }

        if (!Known.TryGetValue(behavior.Metric, out var kind))
        {
            return $"unknown metric '{behavior.Metric}'. Known metrics: {string.Join(", ", Known.Keys)}.";
        }

        if (behavior.MetricDimension is not null)
        {
            return "metric dimensions (topic filters) are not supported; leave metricDimension out.";
        }

        if (behavior.Criteria is not { } criteria)
        {
            return "give the criteria under which a device behaves normally.";
        }

        if (criteria.MlConfidenceLevel is not null)
        {
            return "ML Detect (mlDetectionConfig) is not supported; give a value or a statisticalThreshold.";
        }

        var op = criteria.ComparisonOperator;
        var operators = kind switch
        {
            MetricKind.SourceAddress or MetricKind.ReportedAddresses => CidrOperators,
            MetricKind.ReportedPorts => PortOperators,
            _ => NumberOperators,
        };
        if (op is null || !operators.Contains(op, StringComparer.Ordinal))
        {
            return $"comparisonOperator must be one of {string.Join(", ", operators)} for {behavior.Metric}, not '{op}'.";
        }

        var isSet = operators != NumberOperators;
        if (criteria.DurationSeconds is { } duration)
        {
            if (isSet)
            {
                return "durationSeconds cannot be used with a list-based metric.";
            }

            if (duration is < 1 or > MaxDurationSeconds)
            {
                return $"durationSeconds must be between 1 and {MaxDurationSeconds}, not {duration}.";
            }
        }
        else if (kind == MetricKind.WindowCount)
        {
            return $"{behavior.Metric} counts over a window: give durationSeconds.";
        }

        if ((criteria.Value is null) == (criteria.Statistic is null))
        {
            return "give either a value or a statisticalThreshold, not both or neither.";
        }

        if (criteria.Statistic is { } statistic)
        {
            if (isSet)
            {
                return "a statisticalThreshold needs a numeric metric.";
            }

            if (!Statistics.Contains(statistic, StringComparer.Ordinal))
            {
                return $"statistic must be one of {string.Join(", ", Statistics)}, not '{statistic}'.";
            }

            if (kind == MetricKind.MessageSize && criteria.DurationSeconds is null)
            {
                return "a statisticalThreshold on message size needs durationSeconds.";
            }

            return null;
        }

        var value = criteria.Value!;
        if (kind is MetricKind.SourceAddress or MetricKind.ReportedAddresses)
        {
            if (value.Cidrs is not { Count: > 0 } cidrs)
            {
                return $"{op} needs value.cidrs.";
            }

            var bad = cidrs.FirstOrDefault(c => !IPNetwork.TryParse(c.Contains('/', StringComparison.Ordinal) ? c : c + (c.Contains(':', StringComparison.Ordinal) ? "/128" : "/32"), out _));
            return bad is null ? null : $"'{bad}' is not a CIDR block (such as 10.0.0.0/8).";
        }

        if (kind == MetricKind.ReportedPorts)
        {
            if (value.Ports is not { Count: > 0 } ports)
            {
                return $"{op} needs value.ports.";
            }

            var bad = ports.FirstOrDefault(p => p is < 0 or > 65535, -1);
            return bad == -1 ? null : $"port {bad} is not between 0 and 65535.";
        }

        if (value.Count is null && value.Number is null)
        {
            return $"{op} needs value.count (or value.number).";
        }

        return value.Count is < 0 ? "value.count cannot be negative." : null;
    }

    /// <summary>Whether a numeric datapoint is normal under the operator and threshold.</summary>
    public static bool IsNormal(string op, double value, double threshold) => op switch
    {
        "less-than" => value < threshold,
        "less-than-equals" => value <= threshold,
        "greater-than" => value > threshold,
        "greater-than-equals" => value >= threshold,
        _ => true,
    };

    /// <summary>Whether a set of addresses is normal: all inside the CIDR blocks (in-cidr-set), or none (not-in-cidr-set).</summary>
    public static bool IsNormal(string op, IReadOnlyCollection<IPAddress> addresses, IReadOnlyList<IPNetwork> networks)
    {
        var inside = addresses.Select(a => networks.Any(n => n.Contains(a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a)));
        return op == "in-cidr-set" ? inside.All(x => x) : !inside.Any(x => x);
    }

    /// <summary>Whether a set of ports is normal: all in the set (in-port-set), or none (not-in-port-set).</summary>
    public static bool IsNormal(string op, IReadOnlyCollection<int> ports, IReadOnlyList<int> set) =>
        op == "in-port-set" ? ports.All(set.Contains) : !ports.Any(set.Contains);

    public static IReadOnlyList<IPNetwork> Networks(IEnumerable<string> cidrs) =>
        [.. cidrs.Select(c => IPNetwork.Parse(c.Contains('/', StringComparison.Ordinal) ? c : c + (c.Contains(':', StringComparison.Ordinal) ? "/128" : "/32")))];

    /// <summary>The percentile (0-100) of a statistic name such as p99.9.</summary>
    public static double Percent(string statistic) => double.Parse(statistic.AsSpan(1), NumberStyles.Float, CultureInfo.InvariantCulture);

    /// <summary>The value at a percentile of the values (nearest rank), or null when there are none.</summary>
    public static double? Percentile(List<double> values, double percent)
    {
        if (values.Count == 0)
        {
            return null;
        }

        values.Sort();
        var rank = (int)Math.Ceiling(percent / 100 * values.Count);
        return values[Math.Clamp(rank - 1, 0, values.Count - 1)];
    }

    /// <summary>A metric value as AWS writes it (count, cidrs, ports, number …), for notifications.</summary>
    public static System.Text.Json.Nodes.JsonNode? ToJson(MetricValue value) => System.Text.Json.JsonSerializer.SerializeToNode(value, DefenderJson.Default.MetricValue);

    public static TrellisError? Check(IReadOnlyList<Behavior> behaviors)
    {
        var errors = Validate(behaviors);
        return errors.Count == 0 ? null : new TrellisError.InvalidRequest(string.Join(" ", errors));
    }
}
