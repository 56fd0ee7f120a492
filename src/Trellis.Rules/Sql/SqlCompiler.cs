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
        _ => throw new SqlSyntaxException($"unsupported expression {expression.GetType().Name}", expression.Line, expression.Column),
    };

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
