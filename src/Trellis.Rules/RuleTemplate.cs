using System.Text;
using Trellis.Rules.Sql;

namespace Trellis.Rules;

/// <summary>
/// An action field with substitution templates, such as <c>alerts/${topic(2)}/${clientid()}</c>:
/// each <c>${expression}</c> is compiled once and evaluated per message (Undefined gives "").
/// </summary>
public sealed class RuleTemplate
{
    private readonly List<Func<RuleContext, string?>> _parts;

    private RuleTemplate(List<Func<RuleContext, string?>> parts, bool isConstant, string text)
    {
        _parts = parts;
        IsConstant = isConstant;
        Text = text;
    }

    public bool IsConstant { get; }

    public string Text { get; }

    /// <summary>Compiles a template; a bad <c>${…}</c> throws <see cref="SqlSyntaxException"/>.</summary>
    public static RuleTemplate Compile(string text)
    {
        var parts = new List<Func<RuleContext, string?>>();
        var constant = true;
        var position = 0;
        while (position < text.Length)
        {
            var start = text.IndexOf("${", position, StringComparison.Ordinal);
            if (start < 0)
            {
                var tail = text[position..];
                parts.Add(_ => tail);
                break;
            }

            if (start > position)
            {
                var literal = text[position..start];
                parts.Add(_ => literal);
            }

            var end = text.IndexOf('}', start + 2);
            if (end < 0)
            {
                throw new SqlSyntaxException($"'${{' at position {start + 1} of '{text}' is not closed with '}}'");
            }

            var expression = text[(start + 2)..end];
            try
            {
                parts.Add(CompiledSql.CompileTemplateExpression(expression));
            }
            catch (SqlSyntaxException e)
            {
                throw new SqlSyntaxException($"in the substitution template ${{{expression}}}: {e.Message}");
            }

            constant = false;
            position = end + 1;
        }

        return new RuleTemplate(parts, constant, text);
    }

    public string Render(RuleContext context)
    {
        if (_parts.Count == 1)
        {
            return _parts[0](context) ?? string.Empty;
        }

        var builder = new StringBuilder();
        foreach (var part in _parts)
        {
            builder.Append(part(context));
        }

        return builder.ToString();
    }
}
