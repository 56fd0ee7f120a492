namespace Trellis.Shadows;

public enum ShadowOperation
{
    Get,
    Update,
    Delete,
}

/// <summary>Parses the request topics of the shadow MQTT API (<c>…/shadow[/name/{name}]/get|update|delete</c>).</summary>
public static class ShadowTopic
{
    private const string Prefix = "$aws/things/";

    /// <summary>
    /// True when <paramref name="topic"/> is a shadow request. Reply topics (<c>…/update/accepted</c>
    /// and the like) are not requests. A request with an invalid thing or shadow name is still a
    /// request: <paramref name="key"/> then carries the bad name and the service rejects it.
    /// </summary>
    public static bool TryParseRequest(string topic, out ShadowKey key, out ShadowOperation operation)
    {
        key = default;
        operation = default;
        if (!topic.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }

        var rest = topic.AsSpan(Prefix.Length);
        var slash = rest.IndexOf('/');
        if (slash <= 0)
        {
            return false;
        }

        var thing = rest[..slash];
        rest = rest[(slash + 1)..];
        if (!rest.StartsWith("shadow/", StringComparison.Ordinal))
        {
            return false;
        }

        rest = rest["shadow/".Length..];
        var name = ReadOnlySpan<char>.Empty;
        if (rest.StartsWith("name/", StringComparison.Ordinal))
        {
            rest = rest["name/".Length..];
            slash = rest.IndexOf('/');
            if (slash <= 0)
            {
                return false;
            }

            name = rest[..slash];
            rest = rest[(slash + 1)..];
        }

        switch (rest)
        {
            case "get":
                operation = ShadowOperation.Get;
                break;
            case "update":
                operation = ShadowOperation.Update;
                break;
            case "delete":
                operation = ShadowOperation.Delete;
                break;
            default:
                return false;
        }

        key = new ShadowKey(thing.ToString(), name.ToString());
        return true;
    }
}
