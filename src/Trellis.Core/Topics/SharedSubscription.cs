namespace Trellis.Core.Topics;

/// <summary>MQTT 5 §4.8.2 shared subscriptions: <c>$share/{ShareName}/{filter}</c>.</summary>
public static class SharedSubscription
{
    private const string Prefix = "$share/";

    /// <summary>Splits a shared-subscription filter. Returns false when it is not one.</summary>
    /// <param name="filter">The filter as subscribed.</param>
    /// <param name="group">The share name.</param>
    /// <param name="topicFilter">The filter that selects messages.</param>
    /// <param name="valid">False when it starts with $share/ but is malformed (empty or wildcard share name, no filter).</param>
    public static bool TryParse(string filter, out string group, out string topicFilter, out bool valid)
    {
        group = string.Empty;
        topicFilter = string.Empty;
        valid = true;
        if (!filter.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }

        var rest = filter.AsSpan(Prefix.Length);
        var slash = rest.IndexOf('/');
        if (slash <= 0 || rest[..slash].IndexOfAny('+', '#') >= 0 || slash == rest.Length - 1)
        {
            valid = false;
            return true;
        }

        group = rest[..slash].ToString();
        topicFilter = rest[(slash + 1)..].ToString();
        valid = TopicValidator.IsValidTopicFilter(topicFilter);
        return true;
    }
}
