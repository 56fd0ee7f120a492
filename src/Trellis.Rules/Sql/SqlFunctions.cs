using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Trellis.Rules.Sql;

/// <summary>
/// AWS IoT SQL functions that make sense off AWS. An unknown function or a wrong number of
/// arguments is a compile error; a wrong type at run time gives Undefined, as on AWS.
/// </summary>
internal static class SqlFunctions
{
    private delegate object? Function(RuleContext context, object?[] args);

    private static readonly TimeSpan RegexTimeout = TimeSpan.FromMilliseconds(100);

    private static readonly Dictionary<string, (int Min, int Max, Function Body)> Functions = new(StringComparer.Ordinal)
    {
        ["topic"] = (0, 1, Topic),
        ["clientid"] = (0, 0, (c, _) => c.ClientId ?? "n/a"),
        ["timestamp"] = (0, 0, (c, _) => c.TimestampMs),
        ["principal"] = (0, 0, (c, _) => c.Principal is { } p ? p : Undefined.Value),
        ["accountid"] = (0, 0, (c, _) => c.AccountId),
        ["newuuid"] = (0, 0, (_, _) => Guid.NewGuid().ToString()),
        ["traceid"] = (0, 0, (_, _) => Guid.NewGuid().ToString()),
        ["rand"] = (0, 0, (_, _) => Random.Shared.NextDouble()),
        ["abs"] = (1, 1, (_, a) => SqlValues.Number(a[0]) switch { long l => (object)Math.Abs(l), double d => Math.Abs(d), _ => Undefined.Value }),
        ["sign"] = (1, 1, (_, a) => SqlValues.Double(a[0]) is { } d ? (long)Math.Sign(d) : Undefined.Value),
        ["round"] = (1, 1, (_, a) => SqlValues.Double(a[0]) is { } d ? (long)Math.Round(d, MidpointRounding.AwayFromZero) : Undefined.Value),
        ["floor"] = (1, 1, (_, a) => SqlValues.Double(a[0]) is { } d ? (long)Math.Floor(d) : Undefined.Value),
        ["ceil"] = (1, 1, (_, a) => SqlValues.Double(a[0]) is { } d ? (long)Math.Ceiling(d) : Undefined.Value),
        ["trunc"] = (2, 2, (_, a) => SqlValues.Double(a[0]) is { } d && SqlValues.Number(a[1]) is long n ? Math.Truncate(d * Math.Pow(10, n)) / Math.Pow(10, n) : Undefined.Value),
        ["power"] = (2, 2, (_, a) => Real(SqlValues.Double(a[0]) is { } x && SqlValues.Double(a[1]) is { } y ? Math.Pow(x, y) : null)),
        ["sqrt"] = (1, 1, (_, a) => Real(SqlValues.Double(a[0]) is { } d ? Math.Sqrt(d) : null)),
        ["exp"] = (1, 1, (_, a) => Real(SqlValues.Double(a[0]) is { } d ? Math.Exp(d) : null)),
        ["ln"] = (1, 1, (_, a) => Real(SqlValues.Double(a[0]) is { } d ? Math.Log(d) : null)),
        ["log"] = (1, 1, (_, a) => Real(SqlValues.Double(a[0]) is { } d ? Math.Log10(d) : null)),
        ["sin"] = (1, 1, (_, a) => Real(SqlValues.Double(a[0]) is { } d ? Math.Sin(d) : null)),
        ["cos"] = (1, 1, (_, a) => Real(SqlValues.Double(a[0]) is { } d ? Math.Cos(d) : null)),
        ["tan"] = (1, 1, (_, a) => Real(SqlValues.Double(a[0]) is { } d ? Math.Tan(d) : null)),
        ["asin"] = (1, 1, (_, a) => Real(SqlValues.Double(a[0]) is { } d ? Math.Asin(d) : null)),
        ["acos"] = (1, 1, (_, a) => Real(SqlValues.Double(a[0]) is { } d ? Math.Acos(d) : null)),
        ["atan"] = (1, 1, (_, a) => Real(SqlValues.Double(a[0]) is { } d ? Math.Atan(d) : null)),
        ["atan2"] = (2, 2, (_, a) => Real(SqlValues.Double(a[0]) is { } y && SqlValues.Double(a[1]) is { } x ? Math.Atan2(y, x) : null)),
        ["mod"] = (2, 2, (_, a) => (SqlValues.Number(a[0]), SqlValues.Number(a[1])) switch
        {
            (long x, long y) when y != 0 => (object)(x % y),
            (long or double, long or double) when SqlValues.Double(a[1]) != 0 => SqlValues.Double(a[0])!.Value % SqlValues.Double(a[1])!.Value,
            _ => Undefined.Value,
        }),
        ["concat"] = (1, 64, Concat),
        ["lower"] = (1, 1, (_, a) => a[0] is string s ? s.ToLowerInvariant() : Undefined.Value),
        ["upper"] = (1, 1, (_, a) => a[0] is string s ? s.ToUpperInvariant() : Undefined.Value),
        ["trim"] = (1, 1, (_, a) => a[0] is string s ? s.Trim() : Undefined.Value),
        ["ltrim"] = (1, 1, (_, a) => a[0] is string s ? s.TrimStart() : Undefined.Value),
        ["rtrim"] = (1, 1, (_, a) => a[0] is string s ? s.TrimEnd() : Undefined.Value),
        ["length"] = (1, 1, (_, a) => a[0] switch { string s => (object)(long)s.Length, JsonArray array => (long)array.Count, _ => Undefined.Value }),
        ["numbytes"] = (1, 1, (_, a) => a[0] is string s ? (long)Encoding.UTF8.GetByteCount(s) : Undefined.Value),
        ["substring"] = (2, 3, Substring),
        ["startswith"] = (2, 2, (_, a) => a[0] is string s && a[1] is string p ? s.StartsWith(p, StringComparison.Ordinal) : Undefined.Value),
        ["endswith"] = (2, 2, (_, a) => a[0] is string s && a[1] is string p ? s.EndsWith(p, StringComparison.Ordinal) : Undefined.Value),
        ["indexof"] = (2, 2, (_, a) => a[0] is string s && a[1] is string p ? (long)s.IndexOf(p, StringComparison.Ordinal) : Undefined.Value),
        ["replace"] = (3, 3, (_, a) => a[0] is string s && a[1] is string from && a[2] is string to && from.Length > 0 ? s.Replace(from, to, StringComparison.Ordinal) : Undefined.Value),
        ["lpad"] = (2, 2, (_, a) => a[0] is string s && SqlValues.Number(a[1]) is long n && n is >= 0 and <= 1000 ? s.PadLeft(s.Length + (int)n) : Undefined.Value),
        ["rpad"] = (2, 2, (_, a) => a[0] is string s && SqlValues.Number(a[1]) is long n && n is >= 0 and <= 1000 ? s.PadRight(s.Length + (int)n) : Undefined.Value),
        ["chr"] = (1, 1, (_, a) => SqlValues.Number(a[0]) is long n && n is >= 0 and <= 0x10FFFF and not (>= 0xD800 and <= 0xDFFF) ? char.ConvertFromUtf32((int)n) : Undefined.Value),
        ["regexp_matches"] = (2, 2, (_, a) => a[0] is string s && a[1] is string p && Pattern(p) is { } r ? r.IsMatch(s) : Undefined.Value),
        ["regexp_replace"] = (3, 3, (_, a) => a[0] is string s && a[1] is string p && a[2] is string with && Pattern(p) is { } r ? r.Replace(s, with) : Undefined.Value),
        ["regexp_substr"] = (2, 2, (_, a) => a[0] is string s && a[1] is string p && Pattern(p) is { } r ? r.Match(s) is { Success: true } m ? m.Value : string.Empty : Undefined.Value),
        ["isnull"] = (1, 1, (_, a) => a[0] is null),
        ["isundefined"] = (1, 1, (_, a) => SqlValues.IsUndefined(a[0])),
        ["encode"] = (2, 2, Encode),
        ["decode"] = (2, 2, Decode),
        ["parse_time"] = (2, 3, ParseTime),
        ["time_to_epoch"] = (2, 2, TimeToEpoch),
        ["get"] = (2, 2, (_, a) => (a[0], a[1]) switch
        {
            (JsonArray array, long i) when i >= 0 && i < array.Count => SqlValues.FromNode(array[(int)i]),
            (JsonObject obj, string key) => SqlCompiler.Member(obj, key),
            _ => Undefined.Value,
        }),
        ["nanvl"] = (2, 2, (_, a) => SqlValues.Double(a[0]) is { } d && double.IsNaN(d) ? a[1] : a[0]),
    };

    public static IReadOnlyCollection<string> Names => Functions.Keys;

    public static Func<RuleContext, object?> Compile(CallExpr call, Func<RuleContext, object?>[] arguments)
    {
        if (!Functions.TryGetValue(call.Name, out var function))
        {
            throw new SqlSyntaxException($"unknown function '{call.Name}' (known: {string.Join(", ", Functions.Keys.Order(StringComparer.Ordinal))})", call.Line, call.Column);
        }

        if (arguments.Length < function.Min || arguments.Length > function.Max)
        {
            var expected = function.Min == function.Max ? $"{function.Min}" : $"{function.Min} to {function.Max}";
            throw new SqlSyntaxException($"{call.Name}() takes {expected} argument(s), not {arguments.Length}", call.Line, call.Column);
        }

        // Regular expressions given as literals are checked now, not on the first message.
        if (call.Name.StartsWith("regexp_", StringComparison.Ordinal) && call.Arguments[1] is LiteralExpr { Value: string pattern } && Pattern(pattern) is null)
        {
            throw new SqlSyntaxException($"'{pattern}' is not a valid regular expression", call.Arguments[1].Line, call.Arguments[1].Column);
        }

        var body = function.Body;
        return context =>
        {
            var values = new object?[arguments.Length];
            for (var i = 0; i < values.Length; i++)
            {
                values[i] = arguments[i](context);
            }

            // Undefined in, Undefined out, except for the functions that test for it.
            if (call.Name is not ("isundefined" or "isnull" or "nanvl") && values.Any(SqlValues.IsUndefined))
            {
                return Undefined.Value;
            }

            try
            {
                return body(context, values);
            }
            catch (RegexMatchTimeoutException)
            {
                return Undefined.Value;
            }
        };
    }

    private static object Real(double? value) => value is { } d && double.IsFinite(d) ? d : Undefined.Value;

    private static object? Topic(RuleContext context, object?[] args)
    {
        if (args.Length == 0)
        {
            return context.Topic;
        }

        if (SqlValues.Number(args[0]) is not long n || n < 1)
        {
            return Undefined.Value;
        }

        var levels = context.Topic.Split('/');
        return n <= levels.Length ? levels[n - 1] : Undefined.Value;
    }

    private static object? Concat(RuleContext context, object?[] args)
    {
        if (args.All(a => a is JsonArray))
        {
            var merged = new JsonArray();
            foreach (JsonArray array in args.Cast<JsonArray>())
            {
                foreach (var item in array)
                {
                    merged.Add(item?.DeepClone());
                }
            }

            return merged;
        }

        var text = new StringBuilder();
        foreach (var arg in args)
        {
            text.Append(arg is string s ? s : SqlValues.Text(arg));
        }

        return text.ToString();
    }

    private static object? Substring(RuleContext context, object?[] args)
    {
        if (args[0] is not string s || SqlValues.Number(args[1]) is not long start)
        {
            return Undefined.Value;
        }

        var from = (int)Math.Clamp(start, 0, s.Length);
        var to = s.Length;
        if (args.Length == 3)
        {
            if (SqlValues.Number(args[2]) is not long end)
            {
                return Undefined.Value;
            }

            to = (int)Math.Clamp(end, from, s.Length);
        }

        return s[from..to];
    }

    private static object? Encode(RuleContext context, object?[] args)
    {
        if (args[1] is not string scheme || !scheme.Equals("base64", StringComparison.OrdinalIgnoreCase))
        {
            return Undefined.Value;
        }

        return args[0] switch
        {
            byte[] bytes => Convert.ToBase64String(bytes),
            JsonNode when ReferenceEquals(args[0], context.Payload) => Convert.ToBase64String(context.RawPayload.Span),
            var value => SqlValues.Text(value) is { } text ? Convert.ToBase64String(Encoding.UTF8.GetBytes(text)) : Undefined.Value,
        };
    }

    private static object? Decode(RuleContext context, object?[] args)
    {
        if (args[0] is not string text || args[1] is not string scheme || !scheme.Equals("base64", StringComparison.OrdinalIgnoreCase))
        {
            return Undefined.Value;
        }

        try
        {
            var bytes = Convert.FromBase64String(text);
            var decoded = Encoding.UTF8.GetString(bytes);
            try
            {
                return SqlValues.FromNode(JsonNode.Parse(decoded));
            }
            catch (System.Text.Json.JsonException)
            {
                return decoded;
            }
        }
        catch (FormatException)
        {
            return Undefined.Value;
        }
    }

    /// <summary>parse_time(pattern, epochMs[, timezone]): Java SimpleDateFormat patterns, as on AWS.</summary>
    private static object? ParseTime(RuleContext context, object?[] args)
    {
        if (args[0] is not string pattern || SqlValues.Number(args[1]) is not { } epoch)
        {
            return Undefined.Value;
        }

        var zone = TimeZoneInfo.Utc;
        if (args.Length == 3)
        {
            if (args[2] is not string zoneId || !TimeZoneInfo.TryFindSystemTimeZoneById(zoneId, out var found))
            {
                return Undefined.Value;
            }

            zone = found;
        }

        var milliseconds = epoch is long l ? l : (long)(double)epoch;
        var time = TimeZoneInfo.ConvertTime(DateTimeOffset.FromUnixTimeMilliseconds(milliseconds), zone);
        return time.ToString(JavaPattern(pattern), CultureInfo.InvariantCulture);
    }

    private static object? TimeToEpoch(RuleContext context, object?[] args)
    {
        if (args[0] is not string text || args[1] is not string pattern)
        {
            return Undefined.Value;
        }

        return DateTimeOffset.TryParseExact(text, JavaPattern(pattern), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time)
            ? time.ToUnixTimeMilliseconds()
            : Undefined.Value;
    }

    /// <summary>Translates a Java SimpleDateFormat pattern to a .NET custom format string.</summary>
    private static string JavaPattern(string java)
    {
        var net = new StringBuilder();
        for (var i = 0; i < java.Length;)
        {
            var c = java[i];
            if (c == '\'')
            {
                var end = java.IndexOf('\'', i + 1);
                var literal = end < 0 ? java[(i + 1)..] : java[(i + 1)..end];
                net.Append('\'').Append(literal.Length == 0 ? "\\'" : literal).Append('\'');
                i = end < 0 ? java.Length : end + 1;
                continue;
            }

            var run = 1;
            while (i + run < java.Length && java[i + run] == c)
            {
                run++;
            }

            net.Append(c switch
            {
                'y' => run == 2 ? "yy" : "yyyy",
                'M' => new string('M', Math.Min(run, 4)),
                'd' => run >= 2 ? "dd" : "d",
                'H' => run >= 2 ? "HH" : "H",
                'h' => run >= 2 ? "hh" : "h",
                'm' => run >= 2 ? "mm" : "m",
                's' => run >= 2 ? "ss" : "s",
                'S' => new string('f', Math.Min(run, 7)),
                'a' => "tt",
                'E' => run >= 4 ? "dddd" : "ddd",
                'Z' => "zzz",
                'X' => "zzz",
                'z' => "zzz",
                _ when char.IsAsciiLetter(c) => new string(c, run),
                _ => c is '/' or ':' or '.' or '-' or ' ' or 'T' ? "'" + new string(c, run) + "'" : new string(c, run),
            });
            i += run;
        }

        return net.ToString();
    }

    /// <summary>Compiled patterns, kept (up to a bound) so that a pattern from the payload is not re-parsed per message.</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, Regex?> Patterns = new(StringComparer.Ordinal);

    private static Regex? Pattern(string pattern)
    {
        if (Patterns.TryGetValue(pattern, out var cached))
        {
            return cached;
        }

        Regex? regex;
        try
        {
            regex = new Regex(pattern, RegexOptions.CultureInvariant, RegexTimeout);
        }
        catch (ArgumentException)
        {
            regex = null;
        }

        if (Patterns.Count < 1024)
        {
            Patterns.TryAdd(pattern, regex);
        }

        return regex;
    }
}
