namespace Trellis.Security.Policies;

/// <summary>
/// The policies that apply to one connection, with variables substituted and actions resolved
/// to bits, ready for allocation-free checks. Explicit Deny wins; anything not allowed is denied.
/// </summary>
public sealed class CompiledPolicySet
{
    private static readonly (string Name, IotActions Bit)[] KnownActions =
    [
        ("iot:Connect", IotActions.Connect),
        ("iot:Publish", IotActions.Publish),
        ("iot:Subscribe", IotActions.Subscribe),
        ("iot:Receive", IotActions.Receive),
        ("iot:RetainPublish", IotActions.RetainPublish),
    ];

    private readonly Rule[] _rules;
    private readonly string[] _policyNames;
    private readonly string _clientPrefix;
    private readonly string _topicPrefix;
    private readonly string _topicFilterPrefix;

    private CompiledPolicySet(Rule[] rules, string arnPrefix, string[]? policyNames = null)
    {
        _rules = rules;
        _policyNames = policyNames ?? [];
        _clientPrefix = arnPrefix + "client/";
        _topicPrefix = arnPrefix + "topic/";
        _topicFilterPrefix = arnPrefix + "topicfilter/";
    }

    /// <summary>A set that denies everything.</summary>
    public static CompiledPolicySet DenyAll(string region, string account) => new([], ArnPrefix(region, account));

    /// <summary>The allow-all set used for anonymous clients in development mode (still evaluated per operation).</summary>
    public static CompiledPolicySet AllowAll(string region, string account) =>
        new([new Rule(true, IotActions.Connect | IotActions.Publish | IotActions.Subscribe | IotActions.Receive | IotActions.RetainPublish, ["*"], null)], ArnPrefix(region, account), ["allow-all (anonymous)"]);

    public static string ArnPrefix(string region, string account) => $"arn:aws:iot:{region}:{account}:";

    public static CompiledPolicySet Compile(IEnumerable<PolicyDocument> documents, PolicyVariables variables, string region, string account)
    {
        var rules = new List<Rule>();
        var names = new List<string>();
        foreach (var document in documents)
        {
            names.Add(document.Name ?? "(unnamed)");
            foreach (var statement in document.Statements)
            {
                var mask = IotActions.None;
                foreach (var pattern in statement.Actions)
                {
                    foreach (var (name, bit) in KnownActions)
                    {
                        if (Glob.Match(pattern, name))
                        {
                            mask |= bit;
                        }
                    }
                }

                if (mask == IotActions.None)
                {
                    continue;
                }

                var resources = new List<string>();
                foreach (var resource in statement.Resources)
                {
                    if (variables.Substitute(resource) is { } concrete)
                    {
                        resources.Add(concrete);
                    }
                }

                if (resources.Count > 0)
                {
                    rules.Add(new Rule(statement.Allow, mask, [.. resources], document.Name));
                }
            }
        }

        // Deny rules first: the first matching deny ends the check.
        rules.Sort((a, b) => a.Allow.CompareTo(b.Allow));
        return new CompiledPolicySet([.. rules], ArnPrefix(region, account), [.. names]);
    }

    /// <summary>Why <see cref="CanConnect"/> is false for <paramref name="clientId"/>, in words an operator can act on.</summary>
    public string ExplainConnect(string clientId)
    {
        if (_policyNames.Length == 0)
        {
            return "no policy is attached to this principal (its certificate or token, or its thing's groups): attach one that allows iot:Connect (trellis policies attach)";
        }

        foreach (var rule in _rules)
        {
            if (!rule.Allow && (rule.Actions & IotActions.Connect) != 0 && rule.Resources.Any(p => Glob.Match(p, _clientPrefix, clientId)))
            {
                return $"policy {rule.Policy ?? "(unnamed)"} explicitly denies iot:Connect for client id '{clientId}'";
            }
        }

        var names = string.Join(", ", _policyNames);
        return _policyNames.Length == 1
            ? $"policy {names} does not allow iot:Connect for client id '{clientId}' (a device policy usually allows client/${{iot:Connection.Thing.ThingName}}: connect with the thing's name as client id)"
            : $"none of the policies in effect ({names}) allows iot:Connect for client id '{clientId}' (a device policy usually allows client/${{iot:Connection.Thing.ThingName}}: connect with the thing's name as client id)";
    }

    public bool CanConnect(ReadOnlySpan<char> clientId) => Evaluate(IotActions.Connect, _clientPrefix, clientId);

    public bool CanPublish(ReadOnlySpan<char> topic) => Evaluate(IotActions.Publish, _topicPrefix, topic);

    public bool CanRetainPublish(ReadOnlySpan<char> topic) => Evaluate(IotActions.RetainPublish, _topicPrefix, topic);

    public bool CanReceive(ReadOnlySpan<char> topic) => Evaluate(IotActions.Receive, _topicPrefix, topic);

    public bool CanSubscribe(ReadOnlySpan<char> filter) => Evaluate(IotActions.Subscribe, _topicFilterPrefix, filter);

    private bool Evaluate(IotActions action, string prefix, ReadOnlySpan<char> name)
    {
        var allowed = false;
        foreach (var rule in _rules)
        {
            if ((rule.Actions & action) == 0 || (allowed && rule.Allow))
            {
                continue;
            }

            foreach (var pattern in rule.Resources)
            {
                if (Glob.Match(pattern, prefix, name))
                {
                    if (!rule.Allow)
                    {
                        return false;
                    }

                    allowed = true;
                    break;
                }
            }

            if (allowed)
            {
                // Denies are sorted first, so once an allow matched no deny can follow.
                return true;
            }
        }

        return allowed;
    }

    private sealed record Rule(bool Allow, IotActions Actions, string[] Resources, string? Policy);
}
