using System.Globalization;
using System.Text.RegularExpressions;

namespace Trellis.LoadGen;

/// <summary>Samples of a /metrics scrape as <c>name{labels}</c> → value, without OpenTelemetry's scope labels and timestamps.</summary>
internal static partial class PrometheusSamples
{
    [GeneratedRegex("""otel_scope_[a-z_]+="[^"]*",?""")]
    private static partial Regex ScopeLabel();

    public static Dictionary<string, double> Parse(string text)
    {
        var values = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            var close = line.LastIndexOf('}');
            var nameEnd = close >= 0 ? close + 1 : line.IndexOf(' ', StringComparison.Ordinal);
            if (nameEnd <= 0 || nameEnd >= line.Length)
            {
                continue;
            }

            var key = ScopeLabel().Replace(line[..nameEnd], string.Empty).Replace(",}", "}", StringComparison.Ordinal).Replace("{}", string.Empty, StringComparison.Ordinal);
            var fields = line[nameEnd..].Trim().Split(' ');
            if (double.TryParse(fields[0], CultureInfo.InvariantCulture, out var value))
            {
                values[key] = value;
            }
        }

        return values;
    }
}
