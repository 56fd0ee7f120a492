using System.Text.Json.Nodes;
using Trellis.Core.Errors;

namespace Trellis.Fleet;

/// <summary>A field the index declares with a type (AWS's managed and custom fields).</summary>
public sealed record IndexField(string Name, string? Type);

/// <summary>
/// What the thing index holds, in AWS's terms: the registry (thingIndexingMode REGISTRY), the
/// classic shadow (REGISTRY_AND_SHADOW), named shadows (namedShadowIndexingMode ON with their
/// names in the filter), and connectivity (thingConnectivityIndexingMode STATUS).
/// </summary>
public sealed record IndexingConfiguration(
    string ThingIndexingMode,
    string ThingConnectivityIndexingMode,
    string NamedShadowIndexingMode,
    string DeviceDefenderIndexingMode,
    IReadOnlyList<string> NamedShadowNames,
    IReadOnlyList<IndexField> CustomFields,
    string ThingGroupIndexingMode)
{
    /// <summary>AWS: at most 10 named shadows in the filter.</summary>
    public const int MaxNamedShadows = 10;

    public static IndexingConfiguration Off { get; } = new("OFF", "OFF", "OFF", "OFF", [], [], "OFF");

    public bool Enabled => ThingIndexingMode != "OFF";

    public bool Shadows => ThingIndexingMode == "REGISTRY_AND_SHADOW";

    public bool NamedShadows => Shadows && NamedShadowIndexingMode == "ON";

    public bool Connectivity => Enabled && ThingConnectivityIndexingMode == "STATUS";

    /// <summary>Whether a named shadow is indexed (the classic shadow is the empty name).</summary>
    public bool Indexes(string shadowName) => shadowName.Length == 0 ? Shadows : NamedShadows && NamedShadowNames.Contains(shadowName, StringComparer.Ordinal);

    /// <summary>The fields AWS manages for this configuration (GetIndexingConfiguration shows them).</summary>
    public IReadOnlyList<IndexField> ManagedFields()
    {
        var fields = new List<IndexField>();
        if (!Enabled)
        {
            return fields;
        }

        fields.AddRange([new("thingName", "String"), new("thingId", "String"), new("thingTypeName", "String"), new("thingGroupNames", "String"), new("registry.version", "Number")]);
        if (Shadows)
        {
            fields.AddRange([new("shadow.version", "Number"), new("shadow.hasDelta", "Boolean")]);
        }

        if (NamedShadows)
        {
            fields.AddRange([new("shadow.name.*.version", "Number"), new("shadow.name.*.hasDelta", "Boolean")]);
        }

        if (Connectivity)
        {
            fields.AddRange([new("connectivity.connected", "Boolean"), new("connectivity.timestamp", "Number"), new("connectivity.disconnectReason", "String")]);
        }

        return fields;
    }

    /// <summary>Checks a requested configuration; the message names what is wrong and the values allowed.</summary>
    public TrellisError? Validate()
    {
        static TrellisError? OneOf(string what, string value, params string[] allowed) =>
            allowed.Contains(value, StringComparer.Ordinal) ? null : new TrellisError.InvalidRequest($"{what} '{value}' is not one of {string.Join(", ", allowed)}.");

        var error = OneOf("thingIndexingMode", ThingIndexingMode, "OFF", "REGISTRY", "REGISTRY_AND_SHADOW")
            ?? OneOf("thingConnectivityIndexingMode", ThingConnectivityIndexingMode, "OFF", "STATUS")
            ?? OneOf("namedShadowIndexingMode", NamedShadowIndexingMode, "OFF", "ON")
            ?? OneOf("deviceDefenderIndexingMode", DeviceDefenderIndexingMode, "OFF")
            ?? OneOf("thingGroupIndexingMode", ThingGroupIndexingMode, "OFF");
        if (error is not null)
        {
            return error;
        }

        if (!Enabled && (ThingConnectivityIndexingMode != "OFF" || NamedShadowIndexingMode != "OFF"))
        {
            return new TrellisError.InvalidRequest("thingIndexingMode OFF cannot be combined with connectivity or named-shadow indexing: turn thing indexing on (REGISTRY or REGISTRY_AND_SHADOW).");
        }

        if (NamedShadowIndexingMode == "ON" && !Shadows)
        {
            return new TrellisError.InvalidRequest("namedShadowIndexingMode ON needs thingIndexingMode REGISTRY_AND_SHADOW.");
        }

        if (NamedShadowNames.Count > MaxNamedShadows)
        {
            return new TrellisError.InvalidRequest($"At most {MaxNamedShadows} named shadows can be indexed; the filter names {NamedShadowNames.Count}.");
        }

        foreach (var field in CustomFields)
        {
            if (field.Type is not ("Number" or "String" or "Boolean"))
            {
                return new TrellisError.InvalidRequest($"Custom field '{field.Name}' has type '{field.Type}': use Number, String or Boolean.");
            }

            if (!(field.Name.StartsWith("attributes.", StringComparison.Ordinal) || field.Name.StartsWith("shadow.", StringComparison.Ordinal)))
            {
                return new TrellisError.InvalidRequest($"Custom field '{field.Name}' must name an attribute (attributes.…) or a shadow value (shadow.reported.…, shadow.desired.…, shadow.name.….).");
            }
        }

        return null;
    }

    public string ToJson() => new JsonObject
    {
        ["thingIndexingMode"] = ThingIndexingMode,
        ["thingConnectivityIndexingMode"] = ThingConnectivityIndexingMode,
        ["namedShadowIndexingMode"] = NamedShadowIndexingMode,
        ["deviceDefenderIndexingMode"] = DeviceDefenderIndexingMode,
        ["namedShadowNames"] = new JsonArray([.. NamedShadowNames.Select(n => (JsonNode)n)]),
        ["customFields"] = new JsonArray([.. CustomFields.Select(f => (JsonNode)new JsonObject { ["name"] = f.Name, ["type"] = f.Type })]),
        ["thingGroupIndexingMode"] = ThingGroupIndexingMode,
    }.ToJsonString();

    public static IndexingConfiguration FromJson(string? json)
    {
        if (json is null || JsonNode.Parse(json) is not JsonObject o)
        {
            return Off;
        }

        static string Text(JsonObject o, string name) => o[name]?.GetValue<string>() ?? "OFF";
        return new IndexingConfiguration(
            Text(o, "thingIndexingMode"),
            Text(o, "thingConnectivityIndexingMode"),
            Text(o, "namedShadowIndexingMode"),
            Text(o, "deviceDefenderIndexingMode"),
            [.. (o["namedShadowNames"] as JsonArray ?? []).Select(n => n!.GetValue<string>())],
            [.. (o["customFields"] as JsonArray ?? []).Select(f => new IndexField(f!["name"]!.GetValue<string>(), f["type"]?.GetValue<string>()))],
            Text(o, "thingGroupIndexingMode"));
    }
}
