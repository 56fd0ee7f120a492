using System.Globalization;
using System.Text;
using Lucene.Net.Index;
using Lucene.Net.Search;
using Trellis.Core.Errors;

namespace Trellis.Fleet;

/// <summary>
/// AWS IoT's fleet-index query syntax, parsed by hand into a Lucene query: <c>field:value</c>,
/// wildcards (<c>*</c>, <c>?</c>, leading ones included), quoted phrases, ranges
/// (<c>[a TO b]</c>, <c>{a TO b]</c>, <c>*</c> for an open end), comparisons (<c>field&gt;5</c>,
/// <c>&lt;=</c> …), <c>AND</c>/<c>OR</c>/<c>NOT</c> and <c>-</c>, parentheses, field grouping
/// (<c>thingName:(tv* AND -plasma)</c>), backslash escapes; the default operator is AND and a term
/// without a field searches every field. Matching ignores case. Numbers compare as numbers (the
/// index keeps a numeric copy of every value that reads as one), other values as strings.
/// </summary>
/// <remarks>
/// Lucene's own query parser reads a different dialect (its comparisons, fuzzy and proximity
/// operators, boosts, and no numeric ranges without a schema), and reports errors in its own
/// words: the AWS dialect is small enough to parse here, with positions in every error.
/// </remarks>
public static class FleetQuery
{
    /// <summary>The field that holds every value of a thing (a term without a field searches it).</summary>
    public const string AllField = "_all";

    /// <summary>The numeric copy of a field's values.</summary>
    public static string NumericField(string field) => field + "#n";

    /// <summary>The doc-values copy of a field's string values (buckets, cardinality).</summary>
    public static string ValuesField(string field) => field + "#s";

    /// <summary>Parses <paramref name="query"/>; a syntax error becomes InvalidQueryException naming the position (1-based).</summary>
    public static Result<Query> Parse(string query, out IReadOnlySet<string> fields)
    {
        var used = new HashSet<string>(StringComparer.Ordinal);
        fields = used;
        if (string.IsNullOrWhiteSpace(query))
        {
            return new TrellisError.InvalidQuery("The query string is empty.");
        }

        try
        {
            var parser = new Parser(Lex(query), used);
            return parser.ParseAll();
        }
        catch (QueryException e)
        {
            return new TrellisError.InvalidQuery($"Syntax error at position {e.Position}: {e.Message}. Query: {query}");
        }
    }

    private enum Kind
    {
        Word,
        Quoted,
        LParen,
        RParen,
        Colon,
        LBracket,
        RBracket,
        LBrace,
        RBrace,
        Less,
        LessEqual,
        Greater,
        GreaterEqual,
        Minus,
        Plus,
        End,
    }

    /// <summary>One token; <see cref="Text"/> keeps wildcards and escapes of a word (<c>\*</c> stays escaped).</summary>
    private readonly record struct Token(Kind Kind, string Text, int Position, bool FollowsSpace)
    {
        public bool IsKeyword(string keyword) => Kind == Kind.Word && Text == keyword;
    }

    private sealed class QueryException(int position, string message) : Exception(message)
    {
        public int Position { get; } = position;
    }

    private static List<Token> Lex(string text)
    {
        var tokens = new List<Token>();
        var i = 0;
        var space = true;
        var boundary = true; // where a '-' or '+' is an operator: the start, after white space or '('
        while (i < text.Length)
        {
            var c = text[i];
            if (char.IsWhiteSpace(c))
            {
                i++;
                space = true;
                boundary = true;
                continue;
            }

            var opens = c == '(';

            var start = i;
            Kind? single = c switch
            {
                '(' => Kind.LParen,
                ')' => Kind.RParen,
                ':' => Kind.Colon,
                '[' => Kind.LBracket,
                ']' => Kind.RBracket,
                '{' => Kind.LBrace,
                '}' => Kind.RBrace,
                _ => null,
            };
            if (single is { } kind)
            {
                tokens.Add(new Token(kind, c.ToString(), start + 1, space));
                i++;
            }
            else if (c is '<' or '>')
            {
                var equal = i + 1 < text.Length && text[i + 1] == '=';
                tokens.Add(new Token(c == '<' ? (equal ? Kind.LessEqual : Kind.Less) : (equal ? Kind.GreaterEqual : Kind.Greater), equal ? c + "=" : c.ToString(), start + 1, space));
                i += equal ? 2 : 1;
            }
            else if ((c is '-' or '+') && boundary)
            {
                tokens.Add(new Token(c == '-' ? Kind.Minus : Kind.Plus, c.ToString(), start + 1, space));
                i++;
            }
            else if (c == '"')
            {
                var value = new StringBuilder();
                i++;
                while (i < text.Length && text[i] != '"')
                {
                    if (text[i] == '\\' && i + 1 < text.Length)
                    {
                        i++;
                    }

                    value.Append(text[i++]);
                }

                if (i >= text.Length)
                {
                    throw new QueryException(start + 1, "a quoted value is not closed");
                }

                i++;
                tokens.Add(new Token(Kind.Quoted, value.ToString(), start + 1, space));
            }
            else
            {
                var word = new StringBuilder();
                while (i < text.Length && !char.IsWhiteSpace(text[i]) && text[i] is not ('(' or ')' or ':' or '[' or ']' or '{' or '}' or '<' or '>' or '"'))
                {
                    if (text[i] == '\\')
                    {
                        if (i + 1 >= text.Length)
                        {
                            throw new QueryException(i + 1, "a backslash at the end escapes nothing");
                        }

                        word.Append('\\').Append(text[i + 1]);
                        i += 2;
                        continue;
                    }

                    if (text[i] is '`' or '@' or '#' or '%' or '/' or '\'' or ';' or ',')
                    {
                        throw new QueryException(i + 1, $"the character '{text[i]}' is not allowed (escape it with a backslash)");
                    }

                    word.Append(text[i++]);
                }

                tokens.Add(new Token(Kind.Word, word.ToString(), start + 1, space));
            }

            space = false;
            boundary = opens;
        }

        tokens.Add(new Token(Kind.End, string.Empty, text.Length + 1, true));
        return tokens;
    }

    private sealed class Parser(List<Token> tokens, HashSet<string> fields)
    {
        private int _at;

        private Token Peek => tokens[_at];

        public Query ParseAll()
        {
            var query = ParseOr(null);
            if (Peek.Kind != Kind.End)
            {
                throw new QueryException(Peek.Position, Peek.Kind == Kind.RParen ? "a ')' closes no '('" : $"unexpected '{Peek.Text}'");
            }

            return query;
        }

        private Token Next() => tokens[_at++];

        private Query ParseOr(string? field)
        {
            var parts = new List<Query> { ParseAnd(field) };
            while (Peek.IsKeyword("OR"))
            {
                Next();
                parts.Add(ParseAnd(field));
            }

            if (parts.Count == 1)
            {
                return parts[0];
            }

            var or = new BooleanQuery();
            foreach (var part in parts)
            {
                or.Add(part, Occur.SHOULD);
            }

            return or;
        }

        private Query ParseAnd(string? field)
        {
            var clauses = new List<(Query Query, bool Negated)>();
            while (true)
            {
                if (Peek.Kind is Kind.End or Kind.RParen || Peek.IsKeyword("OR"))
                {
                    if (clauses.Count == 0)
                    {
                        throw new QueryException(Peek.Position, "expected a term");
                    }

                    break;
                }

                if (Peek.IsKeyword("AND"))
                {
                    if (clauses.Count == 0)
                    {
                        throw new QueryException(Peek.Position, "AND needs a term before it");
                    }

                    Next();
                    if (Peek.Kind is Kind.End or Kind.RParen || Peek.IsKeyword("OR") || Peek.IsKeyword("AND"))
                    {
                        throw new QueryException(Peek.Position, "AND needs a term after it");
                    }
                }

                clauses.Add(ParseUnary(field));
            }

            if (clauses.Count == 1 && !clauses[0].Negated)
            {
                return clauses[0].Query;
            }

            var and = new BooleanQuery();
            foreach (var (query, negated) in clauses)
            {
                and.Add(query, negated ? Occur.MUST_NOT : Occur.MUST);
            }

            if (clauses.All(c => c.Negated))
            {
                and.Add(new MatchAllDocsQuery(), Occur.MUST);
            }

            return and;
        }

        private (Query Query, bool Negated) ParseUnary(string? field)
        {
            if (Peek.IsKeyword("NOT") || Peek.Kind == Kind.Minus)
            {
                var at = Next();
                if (Peek.Kind is Kind.End or Kind.RParen)
                {
                    throw new QueryException(at.Position, $"{at.Text} needs a term after it");
                }

                var (inner, negated) = ParseUnary(field);
                return (inner, !negated);
            }

            if (Peek.Kind == Kind.Plus)
            {
                Next();
            }

            return (ParsePrimary(field), false);
        }

        private Query ParsePrimary(string? field)
        {
            var token = Next();
            switch (token.Kind)
            {
                case Kind.LParen:
                    var inner = ParseOr(field);
                    Expect(Kind.RParen, "a ')' to close the '(' at position " + token.Position);
                    return inner;
                case Kind.Quoted:
                    return ValueQuery(field, token, quoted: true);
                case Kind.Word when Peek.Kind == Kind.Colon && !Peek.FollowsSpace:
                    if (field is not null)
                    {
                        throw new QueryException(token.Position, $"a field ({token.Text}) inside the value group of field {field}");
                    }

                    var name = FieldName(token);
                    Next();
                    return FieldValue(name);
                case Kind.Word when Peek.Kind is Kind.Less or Kind.LessEqual or Kind.Greater or Kind.GreaterEqual:
                    var compared = field ?? FieldName(token);
                    if (field is not null)
                    {
                        throw new QueryException(token.Position, $"a comparison inside the value group of field {field}");
                    }

                    var op = Next();
                    var bound = Next();
                    if (bound.Kind is not (Kind.Word or Kind.Quoted))
                    {
                        throw new QueryException(bound.Position, $"expected a value after '{op.Text}'");
                    }

                    var text = bound.Kind == Kind.Quoted ? bound.Text : Unescape(bound.Text);
                    return op.Kind switch
                    {
                        Kind.Less => Range(compared, null, text, false, false, bound.Position),
                        Kind.LessEqual => Range(compared, null, text, false, true, bound.Position),
                        Kind.Greater => Range(compared, text, null, false, false, bound.Position),
                        _ => Range(compared, text, null, true, false, bound.Position),
                    };
                case Kind.Word when token.Text is "AND" or "OR" or "NOT" or "TO":
                    throw new QueryException(token.Position, $"{token.Text} is not a term here");
                case Kind.Word:
                    return ValueQuery(field, token, quoted: false);
                default:
                    throw new QueryException(token.Position, token.Kind == Kind.End ? "the query ends where a term was expected" : $"unexpected '{token.Text}'");
            }
        }

        private Query FieldValue(string field)
        {
            var token = Peek;
            switch (token.Kind)
            {
                case Kind.LParen:
                    Next();
                    var group = ParseOr(field);
                    Expect(Kind.RParen, "a ')' to close the '(' at position " + token.Position);
                    return group;
                case Kind.LBracket or Kind.LBrace:
                    Next();
                    var low = Bound();
                    var to = Next();
                    if (!to.IsKeyword("TO"))
                    {
                        throw new QueryException(to.Position, "expected TO in the range");
                    }

                    var high = Bound();
                    var close = Next();
                    if (close.Kind is not (Kind.RBracket or Kind.RBrace))
                    {
                        throw new QueryException(close.Position, "expected ']' or '}' to close the range");
                    }

                    return Range(field, low, high, token.Kind == Kind.LBracket, close.Kind == Kind.RBracket, token.Position);
                case Kind.Word or Kind.Quoted:
                    Next();
                    if (token.FollowsSpace)
                    {
                        throw new QueryException(token.Position, $"expected a value right after '{field}:'");
                    }

                    return ValueQuery(field, token, token.Kind == Kind.Quoted);
                default:
                    throw new QueryException(token.Position, $"expected a value after '{field}:'");
            }
        }

        /// <summary>A range bound: a value, or <c>*</c> for an open end (null).</summary>
        private string? Bound()
        {
            var token = Next();
            if (token.Kind == Kind.Quoted)
            {
                return token.Text;
            }

            if (token.Kind != Kind.Word || token.Text == "TO")
            {
                throw new QueryException(token.Position, "expected a range bound");
            }

            return token.Text == "*" ? null : Unescape(token.Text);
        }

        private void Expect(Kind kind, string what)
        {
            var token = Next();
            if (token.Kind != kind)
            {
                throw new QueryException(token.Position, "expected " + what);
            }
        }

        private string FieldName(Token token)
        {
            var name = Unescape(token.Text);
            if (name.Length == 0 || name.Contains('*', StringComparison.Ordinal) || name.Contains('?', StringComparison.Ordinal) || name.StartsWith('.') || name.EndsWith('.') || name.StartsWith('_'))
            {
                throw new QueryException(token.Position, $"'{token.Text}' is not a field name");
            }

            fields.Add(name);
            return name;
        }

        private static Query ValueQuery(string? field, Token token, bool quoted)
        {
            var target = field ?? AllField;
            if (!quoted && HasWildcard(token.Text))
            {
                if (token.Text == "*")
                {
                    return field is null ? new MatchAllDocsQuery() : new WildcardQuery(new Term(target, "*"));
                }

                // Lucene's wildcard syntax is AWS's: * and ?, with backslash escapes kept as they are.
                return new WildcardQuery(new Term(target, token.Text.ToLowerInvariant()));
            }

            var value = quoted ? token.Text : Unescape(token.Text);
            Query term = new TermQuery(new Term(target, value.ToLowerInvariant()));
            if (field is not null && TryNumber(value, out var number))
            {
                var either = new BooleanQuery
                {
                    { term, Occur.SHOULD },
                    { NumericRangeQuery.NewDoubleRange(NumericField(field), ThingDocument.PrecisionStep, number, number, true, true), Occur.SHOULD },
                };
                return either;
            }

            return term;
        }

        private static Query Range(string field, string? low, string? high, bool includeLow, bool includeHigh, int position)
        {
            if (low is null && high is null)
            {
                return new WildcardQuery(new Term(field, "*"));
            }

            double? lowNumber = null, highNumber = null;
            var numeric = (low is null || TryNumber(low, out var l) && (lowNumber = l) is not null)
                && (high is null || TryNumber(high, out var h) && (highNumber = h) is not null);
            if (numeric)
            {
                if (lowNumber > highNumber)
                {
                    throw new QueryException(position, $"the range's low bound {low} is above its high bound {high}");
                }

                return NumericRangeQuery.NewDoubleRange(NumericField(field), ThingDocument.PrecisionStep, lowNumber, highNumber, includeLow, includeHigh);
            }

            return TermRangeQuery.NewStringRange(field, low?.ToLowerInvariant(), high?.ToLowerInvariant(), includeLow, includeHigh);
        }

        private static bool HasWildcard(string text)
        {
            for (var i = 0; i < text.Length; i++)
            {
                if (text[i] == '\\')
                {
                    i++;
                }
                else if (text[i] is '*' or '?')
                {
                    return true;
                }
            }

            return false;
        }

        private static string Unescape(string text)
        {
            if (!text.Contains('\\', StringComparison.Ordinal))
            {
                return text;
            }

            var value = new StringBuilder(text.Length);
            for (var i = 0; i < text.Length; i++)
            {
                if (text[i] == '\\' && i + 1 < text.Length)
                {
                    i++;
                }

                value.Append(text[i]);
            }

            return value.ToString();
        }
    }

    /// <summary>A value that reads as a finite number (invariant culture).</summary>
    public static bool TryNumber(string text, out double number) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out number) && double.IsFinite(number)
        && text.Length > 0 && (char.IsAsciiDigit(text[^1]) || text[^1] == '.');
}
