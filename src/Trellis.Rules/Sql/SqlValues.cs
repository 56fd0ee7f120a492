using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Trellis.Rules.Sql;

/// <summary>
/// The values rules compute with: <see cref="Undefined"/>, null, bool, long (Int), double (Decimal),
/// string, JsonObject, JsonArray, and byte[] for a payload that is not JSON. AWS IoT SQL converts
/// strings to numbers or booleans where an operator needs them.
/// </summary>
internal static class SqlValues
{
    /// <summary>
    /// Unwraps a JSON value to a CLR value (objects and arrays stay nodes). Every arm is typed
    /// object: JsonNode's implicit conversions would otherwise turn the primitives back into nodes.
    /// </summary>
    public static object? FromNode(JsonNode? node)
    {
        if (node is not JsonValue v)
        {
            return node;
        }

        switch (v.GetValueKind())
        {
            case JsonValueKind.String:
                return v.GetValue<string>();
            case JsonValueKind.True:
                return true;
            case JsonValueKind.False:
                return false;
            case JsonValueKind.Number:
                if (v.TryGetValue<long>(out var l))
                {
                    return l;
                }

                return v.TryGetValue<double>(out var d) ? d : double.Parse(v.ToJsonString(), CultureInfo.InvariantCulture);
            default:
                return null;
        }
    }

    public static JsonNode? ToNode(object? value) => value switch
    {
        null => null,
        bool b => JsonValue.Create(b),
        long l => JsonValue.Create(l),
        double d when double.IsFinite(d) => JsonValue.Create(d),
        double => null,
        string s => JsonValue.Create(s),
        JsonNode node => node.DeepClone(),
        byte[] bytes => JsonValue.Create(Convert.ToBase64String(bytes)),
        _ => JsonValue.Create(value.ToString()),
    };

    public static bool IsUndefined(object? value) => ReferenceEquals(value, Undefined.Value);

    /// <summary>A number (long or double) from a number or a numeric string; null otherwise.</summary>
    public static object? Number(object? value) => value switch
    {
        long or double => value,
        string s when long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l) => l,
        string s when double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => d,
        _ => null,
    };

    public static double? Double(object? value) => Number(value) switch
    {
        long l => l,
        double d => d,
        _ => null,
    };

    public static bool? Bool(object? value) => value switch
    {
        bool b => b,
        string s when bool.TryParse(s, out var b) => b,
        _ => null,
    };

    public static string? Text(object? value) => value switch
    {
        null => "null",
        string s => s,
        bool b => b ? "true" : "false",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        JsonNode node => node.ToJsonString(),
        byte[] bytes => Convert.ToBase64String(bytes),
        _ => null,
    };

    /// <summary>Equality as AWS defines it: numbers by value, strings and booleans exactly, objects and arrays by content.</summary>
    public static bool? Equal(object? left, object? right)
    {
        if (IsUndefined(left) || IsUndefined(right))
        {
            return null;
        }

        return (left, right) switch
        {
            (null, null) => true,
            (null, _) or (_, null) => false,
            (long a, long b) => a == b,
            (long or double, long or double) => Double(left) == Double(right),
            (string a, string b) => string.Equals(a, b, StringComparison.Ordinal),
            (bool a, bool b) => a == b,
            (JsonNode a, JsonNode b) => JsonNode.DeepEquals(a, b),
            _ => false,
        };
    }

    /// <summary>Ordering for &lt; &gt;: numbers (numeric strings count) or strings; null when not comparable.</summary>
    public static int? Compare(object? left, object? right)
    {
        if (left is string a && right is string b && (Number(a) is null || Number(b) is null))
        {
            return string.CompareOrdinal(a, b);
        }

        return Double(left) is { } x && Double(right) is { } y ? x.CompareTo(y) : null;
    }
}
