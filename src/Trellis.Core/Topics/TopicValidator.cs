namespace Trellis.Core.Topics;

/// <summary>MQTT topic name and topic filter rules (MQTT 3.1.1 §4.7, MQTT 5 §4.7).</summary>
public static class TopicValidator
{
    /// <summary>MQTT §4.7.3: topic names and filters are UTF-8 strings of at most 65 535 bytes.</summary>
    public const int MaxTopicBytes = 65_535;

    /// <summary>A topic a PUBLISH may carry: non-empty, no wildcards, no NUL.</summary>
    public static bool IsValidTopicName(ReadOnlySpan<char> topic)
    {
        if (topic.IsEmpty)
        {
            return false;
        }

        // MQTT §4.7.1: wildcards are not allowed in topic names; §1.5.3: U+0000 is never allowed.
        return topic.IndexOfAny('+', '#', '\0') < 0;
    }

    /// <summary>A filter a SUBSCRIBE may carry: '#' only as the whole last level, '+' only as a whole level.</summary>
    public static bool IsValidTopicFilter(ReadOnlySpan<char> filter)
    {
        if (filter.IsEmpty || filter.Contains('\0'))
        {
            return false;
        }

        var levelStart = 0;
        for (var i = 0; i <= filter.Length; i++)
        {
            if (i < filter.Length && filter[i] != '/')
            {
                continue;
            }

            var level = filter[levelStart..i];
            if (level.Length > 1 && level.IndexOfAny('+', '#') >= 0)
            {
                return false;
            }

            if (level is "#" && i != filter.Length)
            {
                return false;
            }

            levelStart = i + 1;
        }

        return true;
    }
}
