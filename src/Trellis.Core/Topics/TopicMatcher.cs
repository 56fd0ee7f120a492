namespace Trellis.Core.Topics;

/// <summary>Matches topic names against MQTT topic filters without allocating.</summary>
public static class TopicMatcher
{
    /// <summary>MQTT §4.7: does <paramref name="topic"/> match <paramref name="filter"/>?</summary>
    public static bool Matches(ReadOnlySpan<char> filter, ReadOnlySpan<char> topic)
    {
        // MQTT §4.7.2: a filter starting with a wildcard does not match topics starting with '$'.
        if (!topic.IsEmpty && topic[0] == '$' && !filter.IsEmpty && (filter[0] == '+' || filter[0] == '#'))
        {
            return false;
        }

        while (true)
        {
            var fSlash = filter.IndexOf('/');
            var fLevel = fSlash < 0 ? filter : filter[..fSlash];

            if (fLevel is "#")
            {
                return true;
            }

            var tSlash = topic.IndexOf('/');
            var tLevel = tSlash < 0 ? topic : topic[..tSlash];

            if (!(fLevel is "+" || fLevel.SequenceEqual(tLevel)))
            {
                return false;
            }

            if (fSlash < 0 || tSlash < 0)
            {
                if (fSlash < 0 && tSlash < 0)
                {
                    return true;
                }

                // "a/#" matches "a": the remaining filter is exactly "#".
                return tSlash < 0 && filter[(fSlash + 1)..] is "#";
            }

            filter = filter[(fSlash + 1)..];
            topic = topic[(tSlash + 1)..];
        }
    }
}
