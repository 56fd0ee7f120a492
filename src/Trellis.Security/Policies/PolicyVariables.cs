namespace Trellis.Security.Policies;

/// <summary>
/// The values of policy variables for one connection (<c>${iot:ClientId}</c>,
/// <c>${iot:Connection.Thing.ThingName}</c>, <c>${iot:Certificate.Subject.CommonName}</c> …).
/// A variable with no value makes the resource that uses it match nothing, as in IAM.
/// </summary>
public sealed class PolicyVariables
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

    public string? this[string name]
    {
        get => _values.TryGetValue(name, out var v) ? v : null;
        set
        {
            if (value is null)
            {
                _values.Remove(name);
            }
            else
            {
                _values[name] = value;
            }
        }
    }

    /// <summary>Replaces every <c>${name}</c>; returns null when one has no value.</summary>
    public string? Substitute(string resource)
    {
        var start = resource.IndexOf("${", StringComparison.Ordinal);
        if (start < 0)
        {
            return resource;
        }

        var builder = new System.Text.StringBuilder(resource.Length + 16);
        var position = 0;
        while (start >= 0)
        {
            var end = resource.IndexOf('}', start + 2);
            if (end < 0)
            {
                return null;
            }

            builder.Append(resource, position, start - position);
            var name = resource[(start + 2)..end];
            var value = name switch
            {
                // IAM's special characters: ${*}, ${?}, ${$} stand for the literal character.
                "*" => "*",
                "?" => "?",
                "$" => "$",
                _ => this[name] is { } v ? Glob.EscapeLiteral(v) : null,
            };
            if (value is null)
            {
                return null;
            }

            builder.Append(value);
            position = end + 1;
            start = resource.IndexOf("${", position, StringComparison.Ordinal);
        }

        builder.Append(resource, position, resource.Length - position);
        return builder.ToString();
    }
}
