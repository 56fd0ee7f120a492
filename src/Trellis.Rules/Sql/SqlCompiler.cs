using System.Text.Json.Nodes;

namespace Trellis.Rules.Sql;

/// <summary>Turns the syntax tree into closures once, so that messages are evaluated without re-reading the SQL.</summary>
internal static class SqlCompiler
{
    public static Func<RuleContext, object?> Compile(Expr expression) => expression switch
    {
        LiteralExpr literal => _ => literal.Value,
        StarExpr => context => context.Payload,
        FieldExpr field => context => Member(context.Payload, field.Name),
        MemberExpr member => CompileMember(member),
        IndexExpr index => CompileIndex(index),
        UnaryExpr unary => CompileUnary(unary),
        BinaryExpr binary => CompileBinary(binary),
        CallExpr call => SqlFunctions.Compile(call, call.Arguments.Select(Compile).ToArray()),
        CastExpr cast => CompileCast(cast),
        CaseExpr @case => CompileCase(@case),
        SubqueryExpr subquery => CompileSubquery(subquery),
        _ => throw new SqlSyntaxException($"unsupported expression {expression.GetType().Name}", expression.Line, expression.Column),
    };

    /// <summary>A compiled SELECT item: its value, the output key, and whether it is a bare <c>*</c>.</summary>
    public readonly record struct Item(Func<RuleContext, object?> Value, string? Key, bool Star);

    /// <summary>SELECT items with AWS's output names: the alias, else the field, member or function name, else _1, _2 ….</summary>
    public static Item[] CompileItems(IReadOnlyList<SelectItem> items) => [.. items.Select((item, i) => new Item(
        Compile(item.Expression),
        item.Alias ?? item.Expression switch
        {
            StarExpr => null,
            FieldExpr field => field.Name,
            MemberExpr member => member.Name,
            CallExpr call => call.Name,
            _ => "_" + (i + 1).ToString(System.Globalization.CultureInfo.InvariantCulture),
        },
        item.Expression is StarExpr && item.Alias is null))];

    /// <summary>The SELECT list's output object for one context: <c>*</c> copies the payload's fields; Undefined values are left out.</summary>
    public static JsonObject Project(Item[] items, RuleContext context)
    {
        var output = new JsonObject();
        foreach (var (evaluate, key, star) in items)
        {
            var value = evaluate(context);
            if (star)
            {
                if (value is JsonObject payload)
                {
                    foreach (var (name, node) in payload)
                    {
                        output[name] = node?.DeepClone();
                    }
                }

                continue;
            }

            if (!SqlValues.IsUndefined(value))
            {
                output[key!] = SqlValues.ToNode(value);
            }
        }

        return output;
    }

    /// <summary>
    /// <c>(SELECT … FROM source [WHERE …])</c>: for each element of the source array (an object
    /// counts as one element) where WHERE holds, the SELECT list's object or the VALUE; the results
    /// as an array. Inside, field names refer to the element; functions still see the message.
    /// </summary>
    private static Func<RuleContext, object?> CompileSubquery(SubqueryExpr subquery)
    {
        var source = Compile(subquery.Source);
        var where = subquery.Where is null ? null : Compile(subquery.Where);
        var value = subquery.Value is null ? null : Compile(subquery.Value);
        var items = CompileItems(subquery.Items);
        return context =>
        {
            IEnumerable<JsonNode?>? elements = source(context) switch
            {
                JsonArray array => array,
                JsonObject obj => new JsonNode?[] { obj }, // an array, not a collection expression: that would be a JsonArray, which re-parents obj
                _ => null,
            };
            if (elements is null)
            {
                return Undefined.Value;
            }

            var results = new JsonArray();
            foreach (var element in elements)
            {
                var inner = context.WithPayload(SqlValues.FromNode(element));
                if (where is not null && SqlValues.Bool(where(inner)) != true)
                {
                    continue;
                }

                if (value is null)
                {
                    results.Add((JsonNode)Project(items, inner));
                }
                else if (value(inner) is var result && !SqlValues.IsUndefined(result))
                {
                    results.Add(SqlValues.ToNode(result));
                }
            }

            return results;
        };
    }

    public static object? Member(object? target, string name) =>
        target is JsonObject obj && obj.TryGetPropertyValue(name, out var node) ? SqlValues.FromNode(node) : Undefined.Value;

    private static Func<RuleContext, object?> CompileMember(MemberExpr member)
    {
        var target = Compile(member.Target);
        return context => Member(target(context), member.Name);
    }

    private static Func<RuleContext, object?> CompileIndex(IndexExpr index)
    {
        var target = Compile(index.Target);
        var position = Compile(index.Index);
        return context =>
        {
            var value = target(context);
            return (value, position(context)) switch
            {
                (JsonArray array, long i) when i >= 0 && i < array.Count => SqlValues.FromNode(array[(int)i]),
                (JsonObject obj, string key) => Member(obj, key),
                _ => Undefined.Value,
            };
        };
    }

    private static Func<RuleContext, object?> CompileUnary(UnaryExpr unary)
    {
        var operand = Compile(unary.Operand);
        if (unary.Operator == "NOT")
        {
            return context => SqlValues.Bool(operand(context)) is { } b ? !b : Undefined.Value;
        }

        return context => SqlValues.Number(operand(context)) switch
        {
            long l => (object)(-l),
            double d => -d,
            _ => Undefined.Value,
        };
    }

    private static Func<RuleContext, object?> CompileBinary(BinaryExpr binary)
    {
        var left = Compile(binary.Left);
        var right = Compile(binary.Right);
        switch (binary.Operator)
        {
            case "AND":
                return context => SqlValues.Bool(left(context)) is not { } a ? Undefined.Value
                    : !a ? false
                    : SqlValues.Bool(right(context)) is { } b ? b : Undefined.Value;
            case "OR":
                return context => SqlValues.Bool(left(context)) is not { } a ? Undefined.Value
                    : a ? true
                    : SqlValues.Bool(right(context)) is { } b ? b : Undefined.Value;
            case "=":
                return context => SqlValues.Equal(left(context), right(context)) is { } e ? e : Undefined.Value;
            case "<>":
                return context => SqlValues.Equal(left(context), right(context)) is { } e ? !e : Undefined.Value;
            case "<":
                return context => SqlValues.Compare(left(context), right(context)) is { } c ? c < 0 : Undefined.Value;
            case "<=":
                return context => SqlValues.Compare(left(context), right(context)) is { } c ? c <= 0 : Undefined.Value;
            case ">":
                return context => SqlValues.Compare(left(context), right(context)) is { } c ? c > 0 : Undefined.Value;
            case ">=":
                return context => SqlValues.Compare(left(context), right(context)) is { } c ? c >= 0 : Undefined.Value;
            case "IN":
                return context =>
                {
                    var value = left(context);
                    return right(context) is JsonArray array ? array.Any(item => SqlValues.Equal(value, SqlValues.FromNode(item)) == true) : Undefined.Value;
                };
            default:
                var op = binary.Operator;
                return context => Arithmetic(op, left(context), right(context));
        }
    }

    /// <summary>Int with Int stays Int (division truncates, as in AWS IoT SQL); anything with a Decimal is Decimal; non-numbers give Undefined.</summary>
    private static object? Arithmetic(string op, object? leftValue, object? rightValue)
    {
        var a = SqlValues.Number(leftValue);
        var b = SqlValues.Number(rightValue);
        if (a is null || b is null)
        {
            return Undefined.Value;
        }

        if (a is long x && b is long y)
        {
            return op switch
            {
                "+" => x + y,
                "-" => x - y,
                "*" => x * y,
                "/" => y == 0 ? Undefined.Value : x / y,
                _ => y == 0 ? Undefined.Value : x % y,
            };
        }

        var p = SqlValues.Double(a)!.Value;
        var q = SqlValues.Double(b)!.Value;
        var result = op switch
        {
            "+" => p + q,
            "-" => p - q,
            "*" => p * q,
            "/" => q == 0 ? double.NaN : p / q,
            _ => q == 0 ? double.NaN : p % q,
        };
        return double.IsFinite(result) ? result : Undefined.Value;
    }

    private static Func<RuleContext, object?> CompileCast(CastExpr cast)
    {
        var value = Compile(cast.Value);
        switch (cast.Type.ToLowerInvariant())
        {
            case "string":
                return context => value(context) is var v && SqlValues.IsUndefined(v) ? Undefined.Value : SqlValues.Text(v);
            case "int":
                return context => SqlValues.Number(value(context)) switch
                {
                    long l => (object)l,
                    double d => (long)Math.Truncate(d),
                    _ => value(context) is bool b ? (b ? 1L : 0L) : Undefined.Value,
                };
            case "decimal":
                return context => SqlValues.Double(value(context)) is { } d ? (object)d : value(context) is bool b ? (b ? 1.0 : 0.0) : Undefined.Value;
            case "bool":
            case "boolean":
                return context => value(context) switch
                {
                    bool b => (object)b,
                    long l => l != 0,
                    double d => d != 0,
                    string s when bool.TryParse(s, out var b) => b,
                    _ => Undefined.Value,
                };
            default:
                throw new SqlSyntaxException($"unknown type '{cast.Type}' in cast (use String, Int, Decimal or Bool)", cast.Line, cast.Column);
        }
    }

    private static Func<RuleContext, object?> CompileCase(CaseExpr @case)
    {
        var subject = @case.Subject is null ? null : Compile(@case.Subject);
        var branches = @case.Branches.Select(b => (When: Compile(b.When), Then: Compile(b.Then))).ToArray();
        var otherwise = @case.Else is null ? null : Compile(@case.Else);
        return context =>
        {
            var value = subject?.Invoke(context);
            foreach (var (when, then) in branches)
            {
                var test = when(context);
                if (subject is null ? SqlValues.Bool(test) == true : SqlValues.Equal(value, test) == true)
                {
                    return then(context);
                }
            }

            return otherwise is null ? Undefined.Value : otherwise(context);
        };
    }
}
