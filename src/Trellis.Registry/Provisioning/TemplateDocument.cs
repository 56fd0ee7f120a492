using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Trellis.Core.Errors;

namespace Trellis.Registry.Provisioning;

/// <summary>
/// A provisioning template body (AWS's grammar): Parameters, Mappings, Conditions, Resources
/// (AWS::IoT::Thing, AWS::IoT::Certificate, AWS::IoT::Policy) and DeviceConfiguration, with the
/// intrinsic functions Ref, Fn::Join, Fn::Select, Fn::Split, Fn::FindInMap, Fn::Sub, Fn::If and,
/// in conditions, Fn::Equals, Fn::Not, Fn::And, Fn::Or. <see cref="Parse"/> checks everything
/// that can be checked without parameter values, so a bad template is refused when it is saved,
/// not when the first device arrives.
/// </summary>
public sealed partial class TemplateDocument
{
    public const string ThingType = "AWS::IoT::Thing";
    public const string CertificateType = "AWS::IoT::Certificate";
    public const string PolicyType = "AWS::IoT::Policy";

    /// <summary>The certificate's id, always supplied by the server when a certificate is involved.</summary>
    public const string CertificateIdParameter = "AWS::IoT::Certificate::Id";

    private static readonly Dictionary<string, string[]> KnownProperties = new(StringComparer.Ordinal)
    {
        [ThingType] = ["ThingName", "AttributePayload", "ThingTypeName", "ThingGroups", "BillingGroup"],
        [CertificateType] = ["CertificateId", "CertificatePem", "CACertificatePem", "CertificateSigningRequest", "Status", "ThingPrincipalType"],
        [PolicyType] = ["PolicyName", "PolicyDocument"],
    };

    private static readonly HashSet<string> ValueFunctions = new(StringComparer.Ordinal) { "Fn::Join", "Fn::Select", "Fn::Split", "Fn::FindInMap", "Fn::Sub", "Fn::If" };

    private static readonly HashSet<string> ConditionFunctions = new(StringComparer.Ordinal) { "Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or" };

    private static readonly HashSet<string> OverrideValues = new(StringComparer.Ordinal) { "DO_NOTHING", "REPLACE", "FAIL", "MERGE" };

    private readonly Dictionary<string, JsonObject> _parameters;
    private readonly JsonObject _mappings;
    private readonly JsonObject _conditions;
    private readonly List<(string LogicalId, JsonObject Resource)> _resources;
    private readonly JsonNode? _deviceConfiguration;

    private TemplateDocument(Dictionary<string, JsonObject> parameters, JsonObject mappings, JsonObject conditions, List<(string, JsonObject)> resources, JsonNode? deviceConfiguration)
    {
        _parameters = parameters;
        _mappings = mappings;
        _conditions = conditions;
        _resources = resources;
        _deviceConfiguration = deviceConfiguration;
    }

    /// <summary>Declared parameter names.</summary>
    public IEnumerable<string> ParameterNames => _parameters.Keys;

    [GeneratedRegex(@"\$\{([^}]+)\}")]
    private static partial Regex SubstitutionPattern();

    /// <summary>Parses and checks a template body; the error names the place in the template.</summary>
    public static Result<TemplateDocument> Parse(string body)
    {
        JsonObject root;
        try
        {
            if (JsonNode.Parse(body) is not JsonObject parsed)
            {
                return Invalid("the template is not a JSON object.");
            }

            root = parsed;
        }
        catch (JsonException e)
        {
            return Invalid($"the template is not valid JSON: {e.Message}");
        }

        foreach (var (key, _) in root)
        {
            if (key is not ("Parameters" or "Mappings" or "Conditions" or "Resources" or "DeviceConfiguration" or "AWSTemplateFormatVersion" or "Description"))
            {
                return Invalid($"unknown top-level section '{key}' (expected Parameters, Mappings, Conditions, Resources, DeviceConfiguration).");
            }
        }

        var parameters = new Dictionary<string, JsonObject>(StringComparer.Ordinal);
        if (root["Parameters"] is { } parameterNode)
        {
            if (parameterNode is not JsonObject parameterObject)
            {
                return Invalid("Parameters must be an object of parameter declarations.");
            }

            foreach (var (name, declaration) in parameterObject)
            {
                if (declaration is not JsonObject declared)
                {
                    return Invalid($"Parameters.{name} must be an object such as {{\"Type\": \"String\"}}.");
                }

                var type = declared["Type"] is JsonValue t && t.TryGetValue<string>(out var typeName) ? typeName : null;
                if (type is not ("String" or "Number"))
                {
                    return Invalid($"Parameters.{name}.Type must be String or Number.");
                }

                parameters[name] = declared;
            }
        }

        var mappings = root["Mappings"] as JsonObject ?? [];
        if (root["Mappings"] is not null and not JsonObject)
        {
            return Invalid("Mappings must be an object of maps.");
        }

        var conditions = root["Conditions"] as JsonObject ?? [];
        if (root["Conditions"] is not null and not JsonObject)
        {
            return Invalid("Conditions must be an object of named conditions.");
        }

        if (root["Resources"] is not JsonObject resourceObject || resourceObject.Count == 0)
        {
            return Invalid("Resources is required: an object with at least one resource (AWS::IoT::Thing, AWS::IoT::Certificate or AWS::IoT::Policy).");
        }

        var document = new TemplateDocument(parameters, mappings, conditions, [], root["DeviceConfiguration"]);
        foreach (var (name, condition) in conditions)
        {
            if (document.Check(condition, $"Conditions.{name}", inCondition: true) is { } bad)
            {
                return bad;
            }
        }

        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (logicalId, node) in resourceObject)
        {
            var where = $"Resources.{logicalId}";
            if (node is not JsonObject resource)
            {
                return Invalid($"{where} must be an object with Type and Properties.");
            }

            var type = resource["Type"] is JsonValue tv && tv.TryGetValue<string>(out var typeName) ? typeName : null;
            if (type is null || !KnownProperties.TryGetValue(type, out var known))
            {
                return Invalid($"{where}.Type must be AWS::IoT::Thing, AWS::IoT::Certificate or AWS::IoT::Policy, not '{resource["Type"]?.ToJsonString()}'.");
            }

            counts[type] = counts.GetValueOrDefault(type) + 1;
            if (type != PolicyType && counts[type] > 1)
            {
                return Invalid($"{where}: a template provisions at most one {type}.");
            }

            if (resource["Properties"] is not JsonObject properties)
            {
                return Invalid($"{where}.Properties must be an object.");
            }

            foreach (var (property, value) in properties)
            {
                if (!known.Contains(property))
                {
                    return Invalid($"{where}.Properties.{property} is not a property of {type} (known: {string.Join(", ", known)}).");
                }

                if (document.Check(value, $"{where}.Properties.{property}", inCondition: false) is { } bad)
                {
                    return bad;
                }
            }

            var required = type switch
            {
                ThingType => properties.ContainsKey("ThingName") ? null : "ThingName",
                CertificateType => properties.ContainsKey("CertificateId") || properties.ContainsKey("CertificatePem") || properties.ContainsKey("CertificateSigningRequest") ? null : "CertificateId (or CertificatePem, or CertificateSigningRequest)",
                _ => properties.ContainsKey("PolicyName") || properties.ContainsKey("PolicyDocument") ? null : "PolicyName or PolicyDocument",
            };
            if (required is not null)
            {
                return Invalid($"{where}.Properties needs {required}.");
            }

            if (resource["OverrideSettings"] is { } overrides)
            {
                if (overrides is not JsonObject overrideObject)
                {
                    return Invalid($"{where}.OverrideSettings must be an object.");
                }

                foreach (var (property, value) in overrideObject)
                {
                    if (property is not ("AttributePayload" or "ThingTypeName" or "ThingGroups") || value is not JsonValue v || !v.TryGetValue<string>(out var setting) || !OverrideValues.Contains(setting))
                    {
                        return Invalid($"{where}.OverrideSettings.{property} must be one of DO_NOTHING, REPLACE, FAIL, MERGE for AttributePayload, ThingTypeName or ThingGroups.");
                    }
                }
            }

            if (resource["Condition"] is { } conditionRef && (conditionRef is not JsonValue cv || !cv.TryGetValue<string>(out var conditionName) || !conditions.ContainsKey(conditionName)))
            {
                return Invalid($"{where}.Condition must name a condition declared in Conditions.");
            }

            document._resources.Add((logicalId, resource));
        }

        if (document._deviceConfiguration is { } configuration)
        {
            if (configuration is not JsonObject)
            {
                return Invalid("DeviceConfiguration must be an object of string values.");
            }

            if (document.Check(configuration, "DeviceConfiguration", inCondition: false) is { } bad)
            {
                return bad;
            }
        }

        return document;
    }

    /// <summary>
    /// Applies parameter values: every declared parameter needs a value or a Default. Values for
    /// undeclared names are ignored (they may be meant for the pre-provisioning hook).
    /// </summary>
    public Result<ResolvedTemplate> Resolve(IReadOnlyDictionary<string, string> supplied)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, declaration) in _parameters)
        {
            if (supplied.TryGetValue(name, out var value))
            {
                if (declaration["Type"]!.GetValue<string>() == "Number" && !double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out _))
                {
                    return Invalid($"parameter '{name}' is a Number; '{value}' is not.");
                }

                values[name] = value;
            }
            else if (declaration["Default"] is { } fallback)
            {
                values[name] = fallback is JsonValue v && v.TryGetValue<string>(out var text) ? text : fallback.ToJsonString();
            }
            else
            {
                return Invalid($"parameter '{name}' has no value and no Default.");
            }
        }

        foreach (var (name, value) in supplied)
        {
            if (name.StartsWith("AWS::", StringComparison.Ordinal))
            {
                values.TryAdd(name, value);
            }
        }

        try
        {
            var evaluator = new Evaluator(this, values);
            var resolved = new ResolvedTemplate();
            foreach (var (logicalId, resource) in _resources)
            {
                if (resource["Condition"] is JsonValue condition && !evaluator.Condition(condition.GetValue<string>()))
                {
                    continue;
                }

                var properties = (JsonObject)evaluator.Value(resource["Properties"]!, $"Resources.{logicalId}.Properties")!;
                var overrides = resource["OverrideSettings"] as JsonObject;
                switch (resource["Type"]!.GetValue<string>())
                {
                    case ThingType:
                        resolved.Thing = new ThingSpec(
                            logicalId,
                            Text(properties["ThingName"], $"Resources.{logicalId}.Properties.ThingName")!,
                            properties["AttributePayload"] is { } attributes ? StringMap(attributes, $"Resources.{logicalId}.Properties.AttributePayload") : null,
                            Text(properties["ThingTypeName"], $"Resources.{logicalId}.Properties.ThingTypeName"),
                            properties["ThingGroups"] is { } groups ? StringList(groups, $"Resources.{logicalId}.Properties.ThingGroups") : null,
                            Setting(overrides, "AttributePayload"),
                            Setting(overrides, "ThingTypeName"),
                            Setting(overrides, "ThingGroups"));
                        break;
                    case CertificateType:
                        resolved.Certificate = new CertificateSpec(
                            logicalId,
                            Text(properties["CertificateId"], $"Resources.{logicalId}.Properties.CertificateId"),
                            Text(properties["CertificatePem"], $"Resources.{logicalId}.Properties.CertificatePem"),
                            Text(properties["CACertificatePem"], $"Resources.{logicalId}.Properties.CACertificatePem"),
                            Text(properties["CertificateSigningRequest"], $"Resources.{logicalId}.Properties.CertificateSigningRequest"),
                            Text(properties["Status"], $"Resources.{logicalId}.Properties.Status")?.ToUpperInvariant());
                        break;
                    default:
                        var document = properties["PolicyDocument"] switch
                        {
                            null => null,
                            JsonValue v when v.TryGetValue<string>(out var text) => text,
                            JsonObject o => o.ToJsonString(),
                            _ => throw new TemplateException($"Resources.{logicalId}.Properties.PolicyDocument must be a policy document (an object or a JSON string)."),
                        };
                        resolved.Policies.Add(new PolicySpec(logicalId, Text(properties["PolicyName"], $"Resources.{logicalId}.Properties.PolicyName"), document));
                        break;
                }
            }

            if (_deviceConfiguration is not null)
            {
                resolved.DeviceConfiguration = StringMap(evaluator.Value(_deviceConfiguration, "DeviceConfiguration")!, "DeviceConfiguration");
            }

            return resolved;
        }
        catch (TemplateException e)
        {
            return Invalid(e.Message);
        }
    }

    private static TrellisError Invalid(string message) => new TrellisError.InvalidRequest(message);

    private static string? Setting(JsonObject? overrides, string name) =>
        overrides?[name] is JsonValue v && v.TryGetValue<string>(out var setting) ? setting : null;

    private static string? Text(JsonNode? node, string where) => node switch
    {
        null => null,
        JsonValue v when v.TryGetValue<string>(out var text) => text,
        JsonValue v => v.ToJsonString(),
        _ => throw new TemplateException($"{where} must be a string."),
    };

    private static Dictionary<string, string> StringMap(JsonNode node, string where)
    {
        if (node is not JsonObject map)
        {
            throw new TemplateException($"{where} must be an object of string values.");
        }

        return map.ToDictionary(p => p.Key, p => Text(p.Value, $"{where}.{p.Key}") ?? string.Empty, StringComparer.Ordinal);
    }

    private static List<string> StringList(JsonNode node, string where) => node is JsonArray list
        ? [.. list.Select((item, i) => Text(item, $"{where}[{i}]") ?? string.Empty)]
        : throw new TemplateException($"{where} must be a list of names.");

    /// <summary>Static checks of one value: references resolve to declarations, functions are known and well-formed.</summary>
    private TrellisError? Check(JsonNode? node, string where, bool inCondition)
    {
        switch (node)
        {
            case JsonArray array:
                for (var i = 0; i < array.Count; i++)
                {
                    if (Check(array[i], $"{where}[{i}]", inCondition) is { } bad)
                    {
                        return bad;
                    }
                }

                return null;
            case JsonObject obj when obj.Count == 1 && obj.First() is var (key, argument) && (key == "Ref" || key == "Condition" || key.StartsWith("Fn::", StringComparison.Ordinal)):
                return CheckFunction(key, argument, $"{where}.{key}", inCondition);
            case JsonObject obj:
                foreach (var (key, value) in obj)
                {
                    if (key.StartsWith("Fn::", StringComparison.Ordinal) || key == "Ref")
                    {
                        return Invalid($"{where}: an intrinsic function ({key}) must be the only key of its object.");
                    }

                    if (Check(value, $"{where}.{key}", inCondition) is { } bad)
                    {
                        return bad;
                    }
                }

                return null;
            default:
                return null;
        }
    }

    private TrellisError? CheckFunction(string function, JsonNode? argument, string where, bool inCondition)
    {
        TrellisError? Arity(int count) => argument is JsonArray list && list.Count == count
            ? null
            : Invalid($"{where} takes a list of {count} arguments.");

        switch (function)
        {
            case "Ref":
                return argument is JsonValue v && v.TryGetValue<string>(out var name)
                    ? CheckReference(name, where)
                    : Invalid($"{where} takes a parameter name.");
            case "Condition":
                return argument is JsonValue c && c.TryGetValue<string>(out var condition) && _conditions.ContainsKey(condition)
                    ? null
                    : Invalid($"{where} must name a condition declared in Conditions.");
            case "Fn::Sub":
                {
                    string? text = null;
                    var local = new HashSet<string>(StringComparer.Ordinal);
                    if (argument is JsonValue sv && sv.TryGetValue<string>(out var plain))
                    {
                        text = plain;
                    }
                    else if (argument is JsonArray { Count: 2 } pair && pair[0] is JsonValue pv && pv.TryGetValue<string>(out var withVars) && pair[1] is JsonObject vars)
                    {
                        text = withVars;
                        local.UnionWith(vars.Select(p => p.Key));
                        if (Check(vars, where + "[1]", inCondition) is { } bad)
                        {
                            return bad;
                        }
                    }

                    if (text is null)
                    {
                        return Invalid($"{where} takes a string, or [string, {{name: value}}].");
                    }

                    foreach (Match match in SubstitutionPattern().Matches(text))
                    {
                        var reference = match.Groups[1].Value;
                        if (!local.Contains(reference) && CheckReference(reference, where) is { } bad)
                        {
                            return bad;
                        }
                    }

                    return null;
                }

            case "Fn::FindInMap":
                if (Arity(3) is { } badMap)
                {
                    return badMap;
                }

                if (argument![0] is JsonValue mv && mv.TryGetValue<string>(out var map) && !_mappings.ContainsKey(map))
                {
                    return Invalid($"{where}: no map '{map}' is declared in Mappings.");
                }

                break;
            case "Fn::Join":
            case "Fn::Select":
            case "Fn::Split":
                if (Arity(2) is { } badPair)
                {
                    return badPair;
                }

                break;
            case "Fn::If":
                if (Arity(3) is { } badIf)
                {
                    return badIf;
                }

                if (argument![0] is not JsonValue iv || !iv.TryGetValue<string>(out var ifCondition) || !_conditions.ContainsKey(ifCondition))
                {
                    return Invalid($"{where}: the first argument must name a condition declared in Conditions.");
                }

                break;
            case "Fn::Equals":
            case "Fn::Not":
            case "Fn::And":
            case "Fn::Or":
                if (!inCondition)
                {
                    return Invalid($"{where}: {function} is only allowed in Conditions.");
                }

                if (argument is not JsonArray || (function == "Fn::Equals" && Arity(2) is not null) || (function == "Fn::Not" && Arity(1) is not null))
                {
                    return Invalid($"{where} has the wrong arguments.");
                }

                break;
            default:
                return Invalid($"{where}: unknown intrinsic function {function} (known: Ref, {string.Join(", ", ValueFunctions.Concat(ConditionFunctions))}).");
        }

        return Check(argument, where, inCondition);
    }

    private TrellisError? CheckReference(string name, string where) =>
        _parameters.ContainsKey(name) || name.StartsWith("AWS::IoT::Certificate::", StringComparison.Ordinal) || name is "AWS::Region" or "AWS::AccountId"
            ? null
            : Invalid($"{where} refers to '{name}', which is not declared in Parameters.");

    /// <summary>Evaluates values against parameter values; errors are <see cref="TemplateException"/>.</summary>
    private sealed class Evaluator(TemplateDocument template, Dictionary<string, string> values)
    {
        public bool Condition(string name) => Truth(template._conditions[name], $"Conditions.{name}");

        public JsonNode? Value(JsonNode? node, string where)
        {
            switch (node)
            {
                case null:
                    return null;
                case JsonArray array:
                    return new JsonArray([.. array.Select((item, i) => Value(item, $"{where}[{i}]"))]);
                case JsonObject obj when obj.Count == 1 && obj.First() is var (key, argument) && (key == "Ref" || key.StartsWith("Fn::", StringComparison.Ordinal)):
                    return Function(key, argument, $"{where}.{key}");
                case JsonObject obj:
                    var result = new JsonObject();
                    foreach (var (key, value) in obj)
                    {
                        result[key] = Value(value, $"{where}.{key}");
                    }

                    return result;
                default:
                    return node.DeepClone();
            }
        }

        private JsonNode? Function(string function, JsonNode? argument, string where)
        {
            switch (function)
            {
                case "Ref":
                    return Reference(argument!.GetValue<string>(), where);
                case "Fn::Join":
                    {
                        var delimiter = Text(Value(argument![0], where), where) ?? string.Empty;
                        if (Value(argument[1], where) is not JsonArray items)
                        {
                            throw new TemplateException($"{where}: the second argument must be a list.");
                        }

                        return string.Join(delimiter, items.Select(item => Text(item, where)));
                    }

                case "Fn::Select":
                    {
                        var indexText = Text(Value(argument![0], where), where);
                        if (!int.TryParse(indexText, NumberStyles.Integer, CultureInfo.InvariantCulture, out var index))
                        {
                            throw new TemplateException($"{where}: the index '{indexText}' is not a whole number.");
                        }

                        if (Value(argument[1], where) is not JsonArray items || index < 0 || index >= items.Count)
                        {
                            throw new TemplateException($"{where}: index {index} is outside the list.");
                        }

                        return items[index]?.DeepClone();
                    }

                case "Fn::Split":
                    {
                        var delimiter = Text(Value(argument![0], where), where);
                        if (string.IsNullOrEmpty(delimiter))
                        {
                            throw new TemplateException($"{where}: the delimiter must not be empty.");
                        }

                        var source = Text(Value(argument[1], where), where) ?? string.Empty;
                        return new JsonArray([.. source.Split(delimiter).Select(part => (JsonNode)part)]);
                    }

                case "Fn::FindInMap":
                    {
                        var map = Text(Value(argument![0], where), where)!;
                        var first = Text(Value(argument[1], where), where)!;
                        var second = Text(Value(argument[2], where), where)!;
                        return template._mappings[map] is JsonObject level1 && level1[first] is JsonObject level2 && level2.ContainsKey(second)
                            ? level2[second]?.DeepClone()
                            : throw new TemplateException($"{where}: Mappings.{map} has no entry [{first}][{second}].");
                    }

                case "Fn::Sub":
                    {
                        var local = new Dictionary<string, string>(StringComparer.Ordinal);
                        string text;
                        if (argument is JsonArray pair)
                        {
                            text = pair[0]!.GetValue<string>();
                            foreach (var (name, value) in (JsonObject)pair[1]!)
                            {
                                local[name] = Text(Value(value, where), where) ?? string.Empty;
                            }
                        }
                        else
                        {
                            text = argument!.GetValue<string>();
                        }

                        return SubstitutionPattern().Replace(text, m => local.TryGetValue(m.Groups[1].Value, out var v) ? v : Text(Reference(m.Groups[1].Value, where), where) ?? string.Empty);
                    }

                case "Fn::If":
                    return Condition(argument![0]!.GetValue<string>()) ? Value(argument[1], where) : Value(argument[2], where);
                default:
                    throw new TemplateException($"{where}: {function} is only allowed in Conditions.");
            }
        }

        private bool Truth(JsonNode? node, string where)
        {
            if (node is JsonObject obj && obj.Count == 1 && obj.First() is var (key, argument))
            {
                switch (key)
                {
                    case "Fn::Equals":
                        return Text(Value(argument![0], where), where) == Text(Value(argument[1], where), where);
                    case "Fn::Not":
                        return !Truth(argument![0], where);
                    case "Fn::And":
                        return argument!.AsArray().All(item => Truth(item, where));
                    case "Fn::Or":
                        return argument!.AsArray().Any(item => Truth(item, where));
                    case "Condition":
                        return Condition(argument!.GetValue<string>());
                }
            }

            return Text(Value(node, where), where) is "true" or "True";
        }

        private JsonNode Reference(string name, string where)
        {
            if (values.TryGetValue(name, out var value))
            {
                return value;
            }

            throw new TemplateException($"{where}: '{name}' has no value here" +
                (name.StartsWith("AWS::IoT::Certificate::", StringComparison.Ordinal) ? " (this certificate has no such field)." : "."));
        }
    }

    private sealed class TemplateException(string message) : Exception(message);
}

/// <summary>A template with its parameters applied: what to create or update.</summary>
public sealed class ResolvedTemplate
{
    public ThingSpec? Thing { get; set; }

    public CertificateSpec? Certificate { get; set; }

    public List<PolicySpec> Policies { get; } = [];

    public Dictionary<string, string> DeviceConfiguration { get; set; } = [];
}

public sealed record ThingSpec(
    string LogicalId, string Name, Dictionary<string, string>? Attributes, string? TypeName, List<string>? Groups,
    string? AttributeOverride, string? TypeOverride, string? GroupsOverride);

public sealed record CertificateSpec(string LogicalId, string? CertificateId, string? CertificatePem, string? CaCertificatePem, string? SigningRequest, string? Status);

public sealed record PolicySpec(string LogicalId, string? Name, string? Document);
