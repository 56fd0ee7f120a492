namespace Trellis.Security.Policies;

/// <summary>
/// AWS policy wildcards: '*' matches any run of characters (across '/'), '?' exactly one.
/// MQTT '+' and '#' are literal here. Matches a pattern against the concatenation of two spans
/// so a resource ARN never has to be built as a string on the hot path.
/// </summary>
public static class Glob
{
    public static bool Match(ReadOnlySpan<char> pattern, ReadOnlySpan<char> head, ReadOnlySpan<char> tail)
    {
        var length = head.Length + tail.Length;
        int p = 0, s = 0, starP = -1, starS = 0;
        while (s < length)
        {
            var c = s < head.Length ? head[s] : tail[s - head.Length];
            if (p < pattern.Length && (pattern[p] == '?' || Literal(pattern[p]) == c))
            {
                p++;
                s++;
            }
            else if (p < pattern.Length && pattern[p] == '*')
            {
                starP = p++;
                starS = s;
            }
            else if (starP >= 0)
            {
                p = starP + 1;
                s = ++starS;
            }
            else
            {
                return false;
            }
        }

        while (p < pattern.Length && pattern[p] == '*')
        {
            p++;
        }

        return p == pattern.Length;
    }

    public static bool Match(ReadOnlySpan<char> pattern, ReadOnlySpan<char> value) => Match(pattern, value, []);

    /// <summary>
    /// Marks '*' and '?' that came from a policy variable's value as literal characters, so a client
    /// id such as "*" cannot widen a policy.
    /// </summary>
    public static string EscapeLiteral(string value) =>
        value.Replace('*', EscapedStar).Replace('?', EscapedQuestion);

    private const char EscapedStar = '\uE000';
    private const char EscapedQuestion = '\uE001';

    private static char Literal(char c) => c switch
    {
        EscapedStar => '*',
        EscapedQuestion => '?',
        _ => c,
    };
}
