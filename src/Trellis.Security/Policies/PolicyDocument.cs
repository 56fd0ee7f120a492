using System.Text.Json;

namespace Trellis.Security.Policies;

/// <summary>A parsed AWS IoT policy document (IAM grammar: Version, Statement[Effect, Action, Resource]).</summary>
public sealed class PolicyDocument
{
    private PolicyDocument(IReadOnlyList<PolicyStatement> statements) => Statements = statements;

    public IReadOnlyList<PolicyStatement> Statements { get; }

    /// <summary>The policy's name, when the document came from the registry (for refusal messages).</summary>
    public string? Name { get; private init; }

    /// <summary>The same document under <paramref name="name"/>.</summary>
    public PolicyDocument Named(string name) => new(Statements) { Name = name };

    /// <summary>Parses a document; on failure <paramref name="error"/> says what is wrong and where.</summary>
    public static bool TryParse(string json, out PolicyDocument? document, out string error)
    {
        document = null;
        error = string.Empty;
        JsonDocument parsed;
        try
        {
            parsed = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            error = $"Policy document is not valid JSON: {e.Message}";
            return false;
        }

        using (parsed)
        {
            var root = parsed.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                error = "Policy document must be a JSON object.";
                return false;
            }

            if (root.TryGetProperty("Version", out var version)
                && (version.ValueKind != JsonValueKind.String || version.GetString() is not ("2012-10-17" or "2008-10-17")))
            {
                error = "Version must be \"2012-10-17\".";
                return false;
            }

            if (!root.TryGetProperty("Statement", out var statementElement))
            {
                error = "Policy document has no Statement.";
                return false;
            }

            var statementElements = statementElement.ValueKind switch
            {
                JsonValueKind.Array => statementElement.EnumerateArray().ToList(),
                JsonValueKind.Object => [statementElement],
                _ => null,
            };
            if (statementElements is null || statementElements.Count == 0)
            {
                error = "Statement must be an object or a non-empty array of objects.";
                return false;
            }

            var statements = new List<PolicyStatement>();
            for (var i = 0; i < statementElements.Count; i++)
            {
                if (!TryParseStatement(statementElements[i], i, out var statement, out error))
                {
                    return false;
                }

                statements.Add(statement!);
            }

            document = new PolicyDocument(statements);
            return true;
        }
    }

    private static bool TryParseStatement(JsonElement s, int index, out PolicyStatement? statement, out string error)
    {
        statement = null;
        error = string.Empty;
        if (s.ValueKind != JsonValueKind.Object)
        {
            error = $"Statement[{index}] must be an object.";
            return false;
        }

        foreach (var property in s.EnumerateObject())
        {
            if (property.Name is not ("Effect" or "Action" or "Resource" or "Sid"))
            {
                error = $"Statement[{index}]: '{property.Name}' is not supported (supported: Sid, Effect, Action, Resource).";
                return false;
            }
        }

        if (!s.TryGetProperty("Effect", out var effect) || effect.GetString() is not ("Allow" or "Deny"))
        {
            error = $"Statement[{index}]: Effect must be \"Allow\" or \"Deny\".";
            return false;
        }

        if (!TryStrings(s, "Action", out var actions))
        {
            error = $"Statement[{index}]: Action must be a string or a non-empty array of strings.";
            return false;
        }

        foreach (var action in actions)
        {
            // Actions of other services (greengrass:*) are kept and never match an iot: check:
            // policies written for AWS carry them. Which iot: actions exist is checked when a policy
            // is written (IotActionNames), not here, so that stored policies always load.
            var colon = action.IndexOf(':', StringComparison.Ordinal);
            if (action != "*" && (colon <= 0 || colon == action.Length - 1 || !action[..colon].All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-')))
            {
                error = $"Statement[{index}]: action '{action}' is not SERVICE:ACTION, such as iot:Connect.";
                return false;
            }
        }

        if (!TryStrings(s, "Resource", out var resources))
        {
            error = $"Statement[{index}]: Resource must be a string or a non-empty array of strings.";
            return false;
        }

        foreach (var resource in resources)
        {
            if (resource != "*" && !resource.StartsWith("arn:", StringComparison.Ordinal))
            {
                error = $"Statement[{index}]: resource '{resource}' must be \"*\" or an ARN such as arn:aws:iot:us-east-1:123456789012:topic/my/topic.";
                return false;
            }
        }

        statement = new PolicyStatement(effect.GetString() == "Allow", actions, resources);
        return true;
    }

    private static bool TryStrings(JsonElement s, string name, out List<string> values)
    {
        values = [];
        if (!s.TryGetProperty(name, out var element))
        {
            return false;
        }

        if (element.ValueKind == JsonValueKind.String)
        {
            values.Add(element.GetString()!);
            return true;
        }

        if (element.ValueKind != JsonValueKind.Array)
        {
            return false;
        }

        foreach (var item in element.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String)
            {
                return false;
            }

            values.Add(item.GetString()!);
        }

        return values.Count > 0;
    }
}
