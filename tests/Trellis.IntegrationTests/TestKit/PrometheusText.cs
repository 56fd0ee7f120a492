using System.Globalization;

namespace Trellis.IntegrationTests.TestKit;

/// <summary>Reads samples from the Prometheus text that <c>/metrics</c> serves (OpenTelemetry's exporter: scope labels, timestamps).</summary>
public static class PrometheusText
{
    /// <summary>The value of the first sample named <paramref name="name"/> whose labels contain <paramref name="labelContains"/> (any labels when null); null when there is none.</summary>
    public static double? Value(string text, string name, string? labelContains = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith('#') || !line.StartsWith(name, StringComparison.Ordinal) || line.Length == name.Length || line[name.Length] is not (' ' or '{'))
            {
                continue;
            }

            var rest = line[name.Length..];
            var labels = string.Empty;
            if (rest[0] == '{')
            {
                var end = rest.IndexOf('}', StringComparison.Ordinal);
                labels = rest[1..end];
                rest = rest[(end + 1)..];
            }

            if (labelContains is null || labels.Contains(labelContains, StringComparison.Ordinal))
            {
                return double.Parse(rest.Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            }
        }

        return null;
    }
}
