using System.Text.Json;
using System.Text.Json.Nodes;

namespace Trellis.Telemetry;

/// <summary>
/// The second wall of the SQL endpoint, over DuckDB's own parse tree (<c>json_serialize_sql</c>):
/// one SELECT, tables only <c>points</c> and the query's own common table expressions, and only
/// functions whose result is bounded by their input (aggregates, window functions, arithmetic,
/// time, string and math functions). The first wall is the engine itself, which cannot reach the
/// file system (see <see cref="TelemetryStore"/>); this one refuses what the engine could do
/// but cannot interrupt, such as building a list of a hundred million numbers in one value.
/// </summary>
internal static class TelemetrySqlGuard
{
    /// <summary>Functions a query may call, by DuckDB's name (operators included).</summary>
    private static readonly HashSet<string> Allowed = new(StringComparer.OrdinalIgnoreCase)
    {
        // Operators that DuckDB parses as functions.
        "+", "-", "*", "/", "//", "%", "^", "**", "||", "~~", "!~~", "~~*", "!~~*", "~~~", "!~~~", "@",

        // Aggregates (bounded state per group: no list, string_agg or histogram).
        "count", "count_star", "count_if", "countif", "sum", "fsum", "sumkahan", "kahan_sum", "avg", "mean", "favg", "min", "max", "first", "last", "any_value",
        "arg_min", "arg_max", "argmin", "argmax", "min_by", "max_by", "stddev", "stddev_pop", "stddev_samp", "variance", "var_pop", "var_samp",
        "median", "quantile", "quantile_cont", "quantile_disc", "mode", "approx_count_distinct", "approx_quantile", "reservoir_quantile", "mad",
        "corr", "covar_pop", "covar_samp", "regr_slope", "regr_intercept", "regr_r2", "regr_count", "regr_avgx", "regr_avgy",
        "bool_and", "bool_or", "product", "entropy", "kurtosis", "kurtosis_pop", "skewness", "bit_and", "bit_or", "bit_xor", "geomean", "geometric_mean", "weighted_avg",

        // Window functions.
        "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead", "first_value", "last_value", "nth_value",

        // Time.
        "date_trunc", "datetrunc", "time_bucket", "date_part", "datepart", "date_diff", "datediff", "date_sub", "datesub", "date_add", "age",
        "epoch", "epoch_ms", "epoch_us", "epoch_ns", "make_timestamp", "make_date", "make_time", "to_timestamp", "strftime", "strptime", "try_strptime",
        "now", "get_current_timestamp", "current_timestamp", "today", "current_date", "get_current_time", "timezone",
        "year", "month", "day", "hour", "minute", "second", "millisecond", "microsecond", "dayofweek", "dayofyear", "dayofmonth", "week", "weekofyear",
        "isodow", "isoyear", "quarter", "last_day", "dayname", "monthname", "yearweek", "era", "century", "decade", "millennium",
        "to_years", "to_months", "to_weeks", "to_days", "to_hours", "to_minutes", "to_seconds", "to_milliseconds", "to_microseconds",

        // Math.
        "abs", "round", "round_even", "roundbankers", "floor", "ceil", "ceiling", "trunc", "sqrt", "cbrt", "pow", "power", "exp", "ln", "log", "log10", "log2",
        "sign", "greatest", "least", "mod", "fmod", "pi", "radians", "degrees", "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "cot",
        "isnan", "isinf", "isfinite", "even", "gcd", "lcm", "random", "nextafter", "signbit", "bit_count",

        // Strings whose result is no longer than their arguments.
        "lower", "upper", "lcase", "ucase", "length", "strlen", "char_length", "character_length", "len", "substr", "substring", "left", "right",
        "trim", "ltrim", "rtrim", "starts_with", "ends_with", "prefix", "suffix", "contains", "instr", "strpos", "position", "split_part",
        "regexp_matches", "regexp_full_match", "regexp_extract", "concat", "concat_ws", "md5", "hash", "ascii", "chr", "reverse", "nullif", "ifnull",
        "like_escape", "ilike_escape", "not_like_escape", "typeof", "try_cast", "levenshtein", "jaro_winkler_similarity", "hamming",
    };

    /// <summary>Null when the parsed statement may run, else why not (in words for the caller).</summary>
    public static string? Check(JsonNode parsed)
    {
        if (parsed["error"]?.GetValue<bool>() == true)
        {
            var message = parsed["error_message"]?.GetValue<string>() ?? "the statement does not parse";
            return message.StartsWith("Only SELECT", StringComparison.Ordinal)
                ? "only a SELECT is allowed: the SQL endpoint is read-only"
                : $"SQL error: {message}";
        }

        if (parsed["statements"] is not JsonArray { Count: 1 })
        {
            return "send one SELECT statement";
        }

        var ctes = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        CollectCtes(parsed, ctes);
        return Walk(parsed, ctes);
    }

    private static void CollectCtes(JsonNode? node, HashSet<string> names)
    {
        switch (node)
        {
            case JsonObject obj:
                if (obj["cte_map"]?["map"] is JsonArray map)
                {
                    foreach (var entry in map)
                    {
                        if (entry?["key"] is JsonValue key && key.GetValueKind() == JsonValueKind.String)
                        {
                            names.Add(key.GetValue<string>());
                        }
                    }
                }

                foreach (var (_, child) in obj)
                {
                    CollectCtes(child, names);
                }

                break;
            case JsonArray array:
                foreach (var child in array)
                {
                    CollectCtes(child, names);
                }

                break;
        }
    }

    private static string? Walk(JsonNode? node, HashSet<string> ctes)
    {
        switch (node)
        {
            case JsonObject obj:
                if (Refusal(obj, ctes) is { } reason)
                {
                    return reason;
                }

                foreach (var (_, child) in obj)
                {
                    if (Walk(child, ctes) is { } inner)
                    {
                        return inner;
                    }
                }

                return null;
            case JsonArray array:
                foreach (var child in array)
                {
                    if (Walk(child, ctes) is { } inner)
                    {
                        return inner;
                    }
                }

                return null;
            default:
                return null;
        }
    }

    private static string? Refusal(JsonObject obj, HashSet<string> ctes)
    {
        var type = Text(obj, "type");
        var kind = Text(obj, "class");
        if (type == "TABLE_FUNCTION")
        {
            return "table functions (read_csv, read_parquet, glob, range …) are not allowed: the SQL endpoint reads the store's points only";
        }

        if (type == "BASE_TABLE")
        {
            var table = Text(obj, "table_name") ?? string.Empty;
            if (!string.IsNullOrEmpty(Text(obj, "schema_name")) || !string.IsNullOrEmpty(Text(obj, "catalog_name"))
                || !(table.Equals("points", StringComparison.OrdinalIgnoreCase) || ctes.Contains(table)))
            {
                return $"'{Shorten(table)}' is not a table here: query the view points (ts, thing, measure, value) or a WITH name of your own";
            }
        }

        if (kind == "LAMBDA")
        {
            return "lambda functions are not allowed: the SQL endpoint has no list functions";
        }

        if (kind is "FUNCTION" or "AGGREGATE" or "WINDOW" && Text(obj, "function_name") is { } function)
        {
            if (!Allowed.Contains(function) || !string.IsNullOrEmpty(Text(obj, "catalog")) || Text(obj, "schema") is { Length: > 0 } schema && schema != "main")
            {
                return $"the function {Shorten(function)} is not allowed here: the endpoint allows aggregates, window functions and time, math and string functions whose results are bounded (see docs/api.md)";
            }
        }

        return null;
    }

    private static string? Text(JsonObject obj, string name) =>
        obj[name] is JsonValue value && value.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : null;

    private static string Shorten(string text) => text.Length <= 80 ? text : text[..80] + "…";
}
