using System.Globalization;
using System.Text;

namespace Trellis.Rules.Sql;

internal enum TokenKind
{
    Identifier,
    Keyword,
    String,
    Number,
    Symbol,
    End,
}

internal readonly record struct Token(TokenKind Kind, string Text, int Line, int Column)
{
    public bool Is(string keywordOrSymbol) =>
        (Kind is TokenKind.Keyword or TokenKind.Symbol) && string.Equals(Text, keywordOrSymbol, StringComparison.OrdinalIgnoreCase);
}

/// <summary>Splits AWS IoT SQL into tokens, each with its line and column for error messages.</summary>
internal static class SqlLexer
{
    private static readonly HashSet<string> Keywords = new(StringComparer.OrdinalIgnoreCase)
    {
        "SELECT", "FROM", "WHERE", "AS", "AND", "OR", "NOT", "CASE", "WHEN", "THEN", "ELSE", "END", "TRUE", "FALSE", "NULL", "VALUE", "IN",
    };

    public static List<Token> Tokenize(string sql)
    {
        var tokens = new List<Token>();
        int i = 0, line = 1, lineStart = 0;
        while (i < sql.Length)
        {
            var c = sql[i];
            var column = i - lineStart + 1;
            if (c == '\n')
            {
                i++;
                line++;
                lineStart = i;
                continue;
            }

            if (char.IsWhiteSpace(c))
            {
                i++;
                continue;
            }

            if (char.IsAsciiLetter(c) || c == '_')
            {
                var start = i;
                while (i < sql.Length && (char.IsAsciiLetterOrDigit(sql[i]) || sql[i] == '_'))
                {
                    i++;
                }

                var word = sql[start..i];
                tokens.Add(new Token(Keywords.Contains(word) ? TokenKind.Keyword : TokenKind.Identifier, word, line, column));
                continue;
            }

            if (char.IsAsciiDigit(c) || (c == '.' && i + 1 < sql.Length && char.IsAsciiDigit(sql[i + 1])))
            {
                var start = i;
                while (i < sql.Length && (char.IsAsciiDigit(sql[i]) || sql[i] == '.'))
                {
                    i++;
                }

                if (i < sql.Length && (sql[i] is 'e' or 'E'))
                {
                    i++;
                    if (i < sql.Length && (sql[i] is '+' or '-'))
                    {
                        i++;
                    }

                    while (i < sql.Length && char.IsAsciiDigit(sql[i]))
                    {
                        i++;
                    }
                }

                var number = sql[start..i];
                if (!double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out _))
                {
                    throw new SqlSyntaxException($"'{number}' is not a number", line, column);
                }

                tokens.Add(new Token(TokenKind.Number, number, line, column));
                continue;
            }

            if (c is '\'' or '"' or '`')
            {
                // 'text' is a string; "name" and `name` quote an identifier (keys with odd characters).
                var quote = c;
                var text = new StringBuilder();
                i++;
                while (true)
                {
                    if (i >= sql.Length)
                    {
                        throw new SqlSyntaxException($"unterminated {(quote == '\'' ? "string" : "quoted name")} starting here", line, column);
                    }

                    if (sql[i] == '\\' && i + 1 < sql.Length)
                    {
                        text.Append(sql[i + 1] switch { 'n' => '\n', 't' => '\t', var other => other });
                        i += 2;
                        continue;
                    }

                    if (sql[i] == quote)
                    {
                        if (i + 1 < sql.Length && sql[i + 1] == quote)
                        {
                            text.Append(quote);
                            i += 2;
                            continue;
                        }

                        i++;
                        break;
                    }

                    text.Append(sql[i++]);
                }

                tokens.Add(new Token(quote == '\'' ? TokenKind.String : TokenKind.Identifier, text.ToString(), line, column));
                continue;
            }

            var two = i + 1 < sql.Length ? sql.Substring(i, 2) : string.Empty;
            if (two is "<>" or "!=" or "<=" or ">=")
            {
                tokens.Add(new Token(TokenKind.Symbol, two, line, column));
                i += 2;
                continue;
            }

            if ("()[],.*+-/%=<>".Contains(c, StringComparison.Ordinal))
            {
                tokens.Add(new Token(TokenKind.Symbol, c.ToString(), line, column));
                i++;
                continue;
            }

            throw new SqlSyntaxException($"unexpected character '{c}'", line, column);
        }

        tokens.Add(new Token(TokenKind.End, string.Empty, line, sql.Length - lineStart + 1));
        return tokens;
    }
}
