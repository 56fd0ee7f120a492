using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Lucene.Net.Documents;
using Lucene.Net.Util;
using Trellis.Registry;
using Trellis.Shadows;

namespace Trellis.Fleet;

/// <summary>One shadow as the index keeps it: its version and its stored JSON (state, metadata, timestamp).</summary>
public sealed record IndexedShadow(long Version, string StorageJson);

/// <summary>
/// Everything the index holds of one thing, and how it becomes a Lucene document. Every scalar
/// value is indexed three ways: a lower-cased term (matching ignores case), a numeric trie term
/// when it reads as a number (ranges and comparisons), and doc values (aggregations). The parts
/// are stored as JSON, so a change to one part (a shadow) rebuilds the document without reading
/// the others from their stores.
/// </summary>
public sealed class ThingDocument
{
    public const string IdField = "_id";
    private const string RegistryPart = "_reg";
    private const string ShadowsPart = "_shadows";
    private const string ConnectivityPart = "_conn";

    /// <summary>Numeric terms every 8 bits: 8 terms per value instead of Lucene's default 16.</summary>
    public const int PrecisionStep = 8;

    private static readonly FieldType NumberType = Frozen(new FieldType(DoubleField.TYPE_NOT_STORED) { NumericPrecisionStep = PrecisionStep });

    public required ThingRecord Thing { get; init; }

    public required IReadOnlyList<string> Groups { get; init; }

    /// <summary>Indexed shadows by name (the classic shadow under the empty name).</summary>
    public Dictionary<string, IndexedShadow> Shadows { get; init; } = new(StringComparer.Ordinal);

    public ConnectivityRecord? Connectivity { get; init; }

    /// <summary>The Lucene document: the fields searched and aggregated, and the stored parts.</summary>
    public Document ToLucene()
    {
        var writer = new FieldWriter();
        var thing = Thing;
        writer.Document.Add(new StringField(IdField, thing.Name, Field.Store.YES));
        writer.Document.Add(new SortedDocValuesField(IdField, new BytesRef(thing.Name)));
        writer.Add("thingName", thing.Name);
        writer.Add("thingId", thing.Id);
        if (thing.TypeName is not null)
        {
            writer.Add("thingTypeName", thing.TypeName);
        }

        foreach (var group in Groups)
        {
            writer.Add("thingGroupNames", group);
        }

        writer.Add("registry.version", thing.Version);
        foreach (var (key, value) in thing.Attributes)
        {
            writer.Add("attributes." + key, value);
        }

        foreach (var (name, shadow) in Shadows)
        {
            var prefix = name.Length == 0 ? "shadow" : "shadow.name." + name;
            var document = ShadowDocument.FromStorage(shadow.StorageJson, shadow.Version, deleted: false);
            writer.AddJson(prefix + ".reported", document.Reported);
            writer.AddJson(prefix + ".desired", document.Desired);
            var delta = document.Delta();
            writer.AddJson(prefix + ".delta", delta);
            writer.Add(prefix + ".hasDelta", delta is { Count: > 0 });
            writer.Add(prefix + ".version", shadow.Version);
        }

        if (Connectivity is { } connectivity)
        {
            writer.Add("connectivity.connected", connectivity.Connected);
            if (connectivity.TimestampMs > 0)
            {
                writer.Add("connectivity.timestamp", connectivity.TimestampMs);
            }

            if (connectivity.DisconnectReason is { } reason)
            {
                writer.Add("connectivity.disconnectReason", reason);
            }
        }

        writer.Document.Add(new StoredField(RegistryPart, new JsonObject
        {
            ["name"] = thing.Name,
            ["id"] = thing.Id,
            ["arn"] = thing.Arn,
            ["type"] = thing.TypeName,
            ["version"] = thing.Version,
            ["attributes"] = new JsonObject([.. thing.Attributes.Select(a => KeyValuePair.Create(a.Key, (JsonNode?)a.Value))]),
            ["groups"] = new JsonArray([.. Groups.Select(g => (JsonNode)g)]),
        }.ToJsonString()));
        if (Shadows.Count > 0)
        {
            writer.Document.Add(new StoredField(ShadowsPart, new JsonObject([.. Shadows.Select(s => KeyValuePair.Create(s.Key, (JsonNode?)new JsonObject { ["v"] = s.Value.Version, ["d"] = s.Value.StorageJson }))]).ToJsonString()));
        }

        if (Connectivity is { } stored)
        {
            writer.Document.Add(new StoredField(ConnectivityPart, new JsonObject { ["c"] = stored.Connected, ["t"] = stored.TimestampMs, ["r"] = stored.DisconnectReason }.ToJsonString()));
        }

        return writer.Document;
    }

    /// <summary>Reads back the parts a document stores (null when it stores none).</summary>
    public static ThingDocument? FromLucene(Document? document, string? arnForName = null)
    {
        if (document?.Get(RegistryPart) is not { } registryJson || JsonNode.Parse(registryJson) is not JsonObject registry)
        {
            return null;
        }

        var attributes = (registry["attributes"] as JsonObject ?? []).ToDictionary(a => a.Key, a => a.Value!.GetValue<string>(), StringComparer.Ordinal);
        var thing = new ThingRecord(
            registry["name"]!.GetValue<string>(), registry["id"]!.GetValue<string>(), registry["arn"]?.GetValue<string>() ?? arnForName ?? string.Empty,
            registry["type"]?.GetValue<string>(), attributes, registry["version"]!.GetValue<long>());
        var shadows = new Dictionary<string, IndexedShadow>(StringComparer.Ordinal);
        if (document.Get(ShadowsPart) is { } shadowsJson && JsonNode.Parse(shadowsJson) is JsonObject parts)
        {
            foreach (var (name, part) in parts)
            {
                shadows[name] = new IndexedShadow(part!["v"]!.GetValue<long>(), part["d"]!.GetValue<string>());
            }
        }

        ConnectivityRecord? connectivity = null;
        if (document.Get(ConnectivityPart) is { } connectivityJson && JsonNode.Parse(connectivityJson) is JsonObject c)
        {
            connectivity = new ConnectivityRecord(thing.Name, c["c"]!.GetValue<bool>(), c["t"]!.GetValue<long>(), c["r"]?.GetValue<string>());
        }

        return new ThingDocument
        {
            Thing = thing,
            Groups = [.. (registry["groups"] as JsonArray ?? []).Select(g => g!.GetValue<string>())],
            Shadows = shadows,
            Connectivity = connectivity,
        };
    }

    /// <summary>
    /// The <c>shadow</c> member of AWS's ThingDocument: the classic shadow's desired, reported,
    /// metadata, hasDelta and version, and the named shadows under <c>name</c>.
    /// </summary>
    public string? ShadowJson()
    {
        if (Shadows.Count == 0)
        {
            return null;
        }

        var root = new JsonObject();
        var named = new JsonObject();
        foreach (var (name, shadow) in Shadows.OrderBy(s => s.Key, StringComparer.Ordinal))
        {
            var document = ShadowDocument.FromStorage(shadow.StorageJson, shadow.Version, deleted: false);
            var node = name.Length == 0 ? root : new JsonObject();
            foreach (var (section, value) in document.StateNode(withDelta: true))
            {
                node[section] = value?.DeepClone();
            }

            node["metadata"] = document.MetadataNode();
            node["hasDelta"] = document.Delta() is { Count: > 0 };
            node["version"] = shadow.Version;
            if (name.Length > 0)
            {
                named[name] = node;
            }
        }

        if (named.Count > 0)
        {
            root["name"] = named;
        }

        return root.ToJsonString();
    }

    private static FieldType Frozen(FieldType type)
    {
        type.Freeze();
        return type;
    }

    /// <summary>Adds values to a document, with one numeric doc value per field (the first).</summary>
    private sealed class FieldWriter
    {
        private readonly HashSet<string> _numericValues = new(StringComparer.Ordinal);

        public Document Document { get; } = [];

        public void Add(string field, string value)
        {
            var lower = value.ToLowerInvariant();
            Document.Add(new StringField(field, lower, Field.Store.NO));
            Document.Add(new StringField(FleetQuery.AllField, lower, Field.Store.NO));
            Document.Add(new SortedSetDocValuesField(FleetQuery.ValuesField(field), new BytesRef(value)));
            if (FleetQuery.TryNumber(value, out var number))
            {
                AddNumber(field, number);
            }
        }

        public void Add(string field, long value) => Add(field, value.ToString(CultureInfo.InvariantCulture));

        public void Add(string field, bool value) => Add(field, value ? "true" : "false");

        public void AddJson(string field, JsonNode? node)
        {
            switch (node)
            {
                case null:
                    return;
                case JsonObject o:
                    foreach (var (key, value) in o)
                    {
                        AddJson(field + "." + key, value);
                    }

                    return;
                case JsonArray a:
                    foreach (var item in a)
                    {
                        AddJson(field, item);
                    }

                    return;
                case JsonValue v:
                    switch (v.GetValueKind())
                    {
                        case JsonValueKind.String:
                            Add(field, v.GetValue<string>());
                            break;
                        case JsonValueKind.True or JsonValueKind.False:
                            Add(field, v.GetValueKind() == JsonValueKind.True);
                            break;
                        case JsonValueKind.Number:
                            Add(field, v.ToJsonString());
                            break;
                        default:
                            break;
                    }

                    return;
                default:
                    return;
            }
        }

        private void AddNumber(string field, double number)
        {
            var numeric = FleetQuery.NumericField(field);
            Document.Add(new DoubleField(numeric, number, NumberType));
            if (_numericValues.Add(numeric))
            {
                Document.Add(new DoubleDocValuesField(numeric, number));
            }
        }
    }
}
