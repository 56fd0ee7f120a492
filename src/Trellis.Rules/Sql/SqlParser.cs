using System.Globalization;

namespace Trellis.Rules.Sql;

/// <summary>
/// Recursive-descent parser for AWS IoT SQL (2016-03-23):
/// <c>SELECT (* | VALUE expr | expr [AS alias], …) FROM 'topic/filter' [WHERE expr]</c>, with nested
/// queries <c>(SELECT … FROM arrayExpr [WHERE expr])</c> as expressions.
/// </summary>
internal sealed class SqlParser
{
    private readonly List<Token> _tokens;
    private int _position;

    private SqlParser(List<Token> tokens) => _tokens = tokens;

    private Token Current => _tokens[_position];

    public static SqlStatement Parse(string sql)
    {
        var parser = new SqlParser(SqlLexer.Tokenize(sql));
        return parser.Statement();
    }

    /// <summary>One expression alone, for substitution templates (<c>${topic(2)}</c>).</summary>
    public static Expr ParseExpression(string text)
    {
        var parser = new SqlParser(SqlLexer.Tokenize(text));
        var expression = parser.Expression();
        parser.Expect(TokenKind.End, "the end of the expression");
        return expression;
    }

    private SqlStatement Statement()
    {
        var (items, value) = SelectList();
        ExpectKeyword("FROM");
        var topic = Expect(TokenKind.String, "a topic filter in single quotes after FROM, such as FROM 'sensors/+/temperature'");
        Expr? where = null;
        if (Current.Is("WHERE"))
        {
            Advance();
            where = Expression();
        }

        if (Current.Kind != TokenKind.End)
        {
            throw new SqlSyntaxException($"unexpected '{Current.Text}' after the statement (a rule is one SELECT … FROM … [WHERE …])", Current.Line, Current.Column);
        }

        return new SqlStatement(items, value, topic.Text, where);
    }

    /// <summary><c>SELECT (VALUE expr | * | expr [AS alias], …)</c>.</summary>
    private (List<SelectItem> Items, Expr? Value) SelectList()
    {
        ExpectKeyword("SELECT");
        var items = new List<SelectItem>();
        if (Current.Is("VALUE"))
        {
            Advance();
            return (items, Expression());
        }

        do
        {
            var expression = Current.Is("*") ? new StarExpr(Current.Line, Advance().Column) : Expression();
            string? alias = null;
            if (Current.Is("AS"))
            {
                Advance();
                alias = Expect(TokenKind.Identifier, "a name after AS").Text;
            }

            items.Add(new SelectItem(expression, alias));
        }
        while (TryConsume(","));
        return (items, null);
    }

    /// <summary>After the opening parenthesis: <c>SELECT … FROM expr [WHERE expr])</c>.</summary>
    private SubqueryExpr Subquery(Token start)
    {
        var (items, value) = SelectList();
        ExpectKeyword("FROM");
        if (Current.Kind == TokenKind.String)
        {
            throw Error("an array of the message after FROM in a nested query, such as FROM readings (a topic filter belongs to the outer FROM)");
        }

        var source = Expression();
        Expr? where = null;
        if (Current.Is("WHERE"))
        {
            Advance();
            where = Expression();
        }

        ExpectSymbol(")");
        return new SubqueryExpr(items, value, source, where, start.Line, start.Column);
    }

    private Expr Expression() => Or();

    private Expr Or()
    {
        var left = And();
        while (Current.Is("OR"))
        {
            var op = Advance();
            left = new BinaryExpr("OR", left, And(), op.Line, op.Column);
        }

        return left;
    }

    private Expr And()
    {
        var left = Not();
        while (Current.Is("AND"))
        {
            var op = Advance();
            left = new BinaryExpr("AND", left, Not(), op.Line, op.Column);
        }

        return left;
    }

    private Expr Not()
    {
        if (Current.Is("NOT"))
        {
            var op = Advance();
            return new UnaryExpr("NOT", Not(), op.Line, op.Column);
        }

        return Comparison();
    }

    private Expr Comparison()
    {
        var left = Additive();
        if (Current.Kind == TokenKind.Symbol && Current.Text is "=" or "<>" or "!=" or "<" or "<=" or ">" or ">=")
        {
            var op = Advance();
            return new BinaryExpr(op.Text == "!=" ? "<>" : op.Text, left, Additive(), op.Line, op.Column);
        }

        if (Current.Is("IN"))
        {
            var op = Advance();
            return new BinaryExpr("IN", left, Additive(), op.Line, op.Column);
        }

        return left;
    }

    private Expr Additive()
    {
        var left = Multiplicative();
        while (Current.Kind == TokenKind.Symbol && Current.Text is "+" or "-")
        {
            var op = Advance();
            left = new BinaryExpr(op.Text, left, Multiplicative(), op.Line, op.Column);
        }

        return left;
    }

    private Expr Multiplicative()
    {
        var left = Unary();
        while (Current.Kind == TokenKind.Symbol && Current.Text is "*" or "/" or "%")
        {
            var op = Advance();
            left = new BinaryExpr(op.Text, left, Unary(), op.Line, op.Column);
        }

        return left;
    }

    private Expr Unary()
    {
        if (Current.Is("-"))
        {
            var op = Advance();
            return new UnaryExpr("-", Unary(), op.Line, op.Column);
        }

        return Postfix();
    }

    private Expr Postfix()
    {
        var expression = Primary();
        while (true)
        {
            if (Current.Is("."))
            {
                var dot = Advance();
                var name = Current.Kind is TokenKind.Identifier or TokenKind.Keyword
                    ? Advance().Text
                    : throw Error("a field name after '.'");
                expression = new MemberExpr(expression, name, dot.Line, dot.Column);
            }
            else if (Current.Is("["))
            {
                var bracket = Advance();
                var index = Expression();
                ExpectSymbol("]");
                expression = new IndexExpr(expression, index, bracket.Line, bracket.Column);
            }
            else
            {
                return expression;
            }
        }
    }

    private Expr Primary()
    {
        var token = Current;
        switch (token.Kind)
        {
            case TokenKind.Number:
                {
                    Advance();

                    // A whole number is an Int (long), anything else a Decimal (double): typed object, so neither widens the other.
                    object number = !token.Text.Contains('.', StringComparison.Ordinal) && !token.Text.Contains('e', StringComparison.OrdinalIgnoreCase)
                        && long.TryParse(token.Text, NumberStyles.None, CultureInfo.InvariantCulture, out var integer)
                            ? (object)integer
                            : double.Parse(token.Text, CultureInfo.InvariantCulture);
                    return new LiteralExpr(number, token.Line, token.Column);
                }

            case TokenKind.String:
                Advance();
                return new LiteralExpr(token.Text, token.Line, token.Column);
            case TokenKind.Keyword when token.Is("TRUE") || token.Is("FALSE"):
                Advance();
                return new LiteralExpr(token.Is("TRUE"), token.Line, token.Column);
            case TokenKind.Keyword when token.Is("NULL"):
                Advance();
                return new LiteralExpr(null, token.Line, token.Column);
            case TokenKind.Keyword when token.Is("CASE"):
                return Case();
            case TokenKind.Symbol when token.Is("("):
                {
                    Advance();
                    if (Current.Is("SELECT"))
                    {
                        return Subquery(token);
                    }

                    var inner = Expression();
                    ExpectSymbol(")");
                    return inner;
                }

            case TokenKind.Symbol when token.Is("*"):
                Advance();
                return new StarExpr(token.Line, token.Column);
            case TokenKind.Identifier:
                Advance();
                if (!Current.Is("("))
                {
                    return new FieldExpr(token.Text, token.Line, token.Column);
                }

                Advance();
                if (string.Equals(token.Text, "cast", StringComparison.OrdinalIgnoreCase))
                {
                    var value = Expression();
                    ExpectKeyword("AS");
                    var type = Expect(TokenKind.Identifier, "a type after AS (String, Int, Decimal or Bool)").Text;
                    ExpectSymbol(")");
                    return new CastExpr(value, type, token.Line, token.Column);
                }

                var arguments = new List<Expr>();
                if (!Current.Is(")"))
                {
                    do
                    {
                        arguments.Add(Expression());
                    }
                    while (TryConsume(","));
                }

                ExpectSymbol(")");
                return new CallExpr(token.Text.ToLowerInvariant(), arguments, token.Line, token.Column);
            default:
                throw Error("an expression");
        }
    }

    private CaseExpr Case()
    {
        var start = Advance();
        Expr? subject = Current.Is("WHEN") ? null : Expression();
        var branches = new List<(Expr, Expr)>();
        while (Current.Is("WHEN"))
        {
            Advance();
            var when = Expression();
            ExpectKeyword("THEN");
            branches.Add((when, Expression()));
        }

        if (branches.Count == 0)
        {
            throw Error("WHEN after CASE");
        }

        Expr? otherwise = null;
        if (Current.Is("ELSE"))
        {
            Advance();
            otherwise = Expression();
        }

        ExpectKeyword("END");
        return new CaseExpr(subject, branches, otherwise, start.Line, start.Column);
    }

    private Token Advance() => _tokens[_position++];

    private bool TryConsume(string symbol)
    {
        if (!Current.Is(symbol))
        {
            return false;
        }

        Advance();
        return true;
    }

    private Token Expect(TokenKind kind, string what) => Current.Kind == kind ? Advance() : throw Error(what);

    private void ExpectKeyword(string keyword)
    {
        if (!Current.Is(keyword))
        {
            throw Error(keyword);
        }

        Advance();
    }

    private void ExpectSymbol(string symbol)
    {
        if (!Current.Is(symbol))
        {
            throw Error($"'{symbol}'");
        }

        Advance();
    }

    private SqlSyntaxException Error(string expected) =>
        new($"expected {expected}{(Current.Kind == TokenKind.End ? string.Empty : $", found '{Current.Text}'")}", Current.Line, Current.Column);
}
