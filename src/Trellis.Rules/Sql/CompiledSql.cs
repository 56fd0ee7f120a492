using System.Text.Json.Nodes;
using Trellis.Core.Topics;

namespace Trellis.Rules.Sql;

/// <summary>
/// A rule's SQL, compiled once: the FROM topic filter, the WHERE test and the SELECT projection as
/// closures. <see cref="Evaluate"/> runs them for one message without re-reading the SQL.
/// </summary>
public sealed class CompiledSql
{
    private readonly Func<RuleContext, object?>? _where;
    private readonly SqlCompiler.Item[] _items;
    private readonly Func<RuleContext, object?>? _value;

    private CompiledSql(string topicFilter, Func<RuleContext, object?>? where, SqlCompiler.Item[] items, Func<RuleContext, object?>? value)
    {
        TopicFilter = topicFilter;
        _where = where;
        _items = items;
        _value = value;
    }

    /// <summary>The FROM clause's topic filter.</summary>
    public string TopicFilter { get; }

    /// <summary>Compiles AWS IoT SQL; a mistake throws <see cref="SqlSyntaxException"/> with its line and column.</summary>
    public static CompiledSql Compile(string sql)
    {
        var statement = SqlParser.Parse(sql);
        if (!TopicValidator.IsValidTopicFilter(statement.Topic))
        {
            throw new SqlSyntaxException($"'{statement.Topic}' in FROM is not a valid topic filter (+ and # only as whole levels, # last)", 1, sql.IndexOf(statement.Topic, StringComparison.Ordinal) + 1);
        }

        var where = statement.Where is null ? null : SqlCompiler.Compile(statement.Where);
        if (statement.Value is { } valueExpression)
        {
            return new CompiledSql(statement.Topic, where, [], SqlCompiler.Compile(valueExpression));
        }

        var items = SqlCompiler.CompileItems(statement.Items);
        return new CompiledSql(statement.Topic, where, items, null);
    }

    /// <summary>
    /// The rule's output for one message: a JSON document, the raw bytes (<c>SELECT *</c> of a
    /// payload that is not JSON), or null when WHERE is not true (or VALUE is Undefined).
    /// </summary>
    public object? Evaluate(RuleContext context)
    {
        if (_where is not null && SqlValues.Bool(_where(context)) != true)
        {
            return null;
        }

        if (_value is not null)
        {
            var value = _value(context);
            return SqlValues.IsUndefined(value) ? null : value is byte[] bytes ? bytes : SqlValues.ToNode(value) ?? JsonValue.Create((string?)null);
        }

        if (_items.Length == 1 && _items[0].Star && context.Payload is byte[] raw)
        {
            return raw;
        }

        return SqlCompiler.Project(_items, context);
    }

    /// <summary>The WHERE test alone: true or false, or null when it says neither (a member the message lacks); true when there is no WHERE.</summary>
    public bool? Condition(RuleContext context) => _where is null ? true : SqlValues.Bool(_where(context));

    /// <summary>The SELECT output for a message whose condition already held (a JSON document, raw bytes, or null).</summary>
    public object? Project(RuleContext context)
    {
        if (_value is not null)
        {
            var value = _value(context);
            return SqlValues.IsUndefined(value) ? null : value is byte[] bytes ? bytes : SqlValues.ToNode(value);
        }

        return _items.Length == 1 && _items[0].Star && context.Payload is byte[] raw ? raw : SqlCompiler.Project(_items, context);
    }

    /// <summary>Evaluates one expression (a substitution template's <c>${…}</c>) as text; null when Undefined.</summary>
    public static Func<RuleContext, string?> CompileTemplateExpression(string expression)
    {
        var compiled = SqlCompiler.Compile(SqlParser.ParseExpression(expression));
        return context => compiled(context) is var value && SqlValues.IsUndefined(value) ? null : SqlValues.Text(value);
    }
}
