using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Lucene.Net.Documents;
using Lucene.Net.Index;
using Lucene.Net.Util;
using Trellis.Registry;
using Trellis.Shadows;

namespace Trellis.Fleet;

/// <summary>One shadow as the index keeps it: its version and its stored JSON (state, metadata, timestamp).</summary>
public sealed record IndexedShadow(long Version, string StorageJson);

/// <summary>
/// Everything the index holds of one thing, and how it becomes a Lucene document. Every scalar
/// value is indexed three ways: a lower-cased term (matching ignores case), a numeric trie term
/// when it reads as a number (ranges and comparisons), and doc values (aggregations). Nothing is
/// stored in Lucene: the index keeps each thing's parts in memory, so a change to one part (a
/// shadow) rebuilds the document without reading the others.
/// </summary>
public sealed class ThingDocument
{
    public const string IdField = "_id";

    /// <summary>Numeric terms every 8 bits: 8 terms per value instead of Lucene's default 16.</summary>
    public const int PrecisionStep = 8;

    internal static readonly FieldType NumberType = Frozen(new FieldType(DoubleField.TYPE_NOT_STORED) { NumericPrecisionStep = PrecisionStep });

    public required ThingRecord Thing { get; init; }

    public required IReadOnlyList<string> Groups { get; init; }

    /// <summary>Indexed shadows by name (the classic shadow under the empty name).</summary>
    public Dictionary<string, IndexedShadow> Shadows { get; init; } = new(StringComparer.Ordinal);

    public ConnectivityRecord? Connectivity { get; init; }

    /// <summary>
    /// The Lucene document: the fields searched and aggregated. With a <paramref name="pool"/>,
    /// its fields come from the pool (give them back with <see cref="FieldPool.Return"/> once the
    /// writer has taken the document).
    /// </summary>
    public Document ToLucene(FieldPool? pool = null)
    {
        var writer = new FieldWriter(pool ?? new FieldPool());
        var thing = Thing;
        writer.Document.Add(writer.Pool.Term(IdField, thing.Name));
        writer.Document.Add(writer.Pool.Sorted(IdField, thing.Name));
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

        return writer.Document;
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

    /// <summary>
    /// Longest value indexed, in UTF-8 bytes: Lucene's limit for one term and one doc value. A
    /// shadow value that long is possible only where an embedding host raised the shadow size limit.
    /// </summary>
    internal static readonly int MaxTermBytes = IndexWriter.MAX_TERM_LENGTH;

    /// <summary>Adds values to a document, with one numeric doc value per field (the first).</summary>
    private sealed class FieldWriter(FieldPool pool)
    {
        private readonly HashSet<string> _numericValues = new(StringComparer.Ordinal);

        public FieldPool Pool => pool;

        public Document Document { get; } = [];

        public void Add(string field, string value)
        {
            var lower = value.ToLowerInvariant();
            if (value.Length > MaxTermBytes / 3 && (Encoding.UTF8.GetByteCount(value) > MaxTermBytes || Encoding.UTF8.GetByteCount(lower) > MaxTermBytes))
            {
                return; // Lucene refuses the whole document for one such term; the value alone stays unsearchable
            }

            Document.Add(pool.Term(field, lower));
            Document.Add(pool.Term(FleetQuery.AllField, lower));
            Document.Add(pool.SortedSet(FleetQuery.ValuesField(field), value));
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
            Document.Add(pool.Number(numeric, number));
            if (_numericValues.Add(numeric))
            {
                Document.Add(pool.DoubleValues(numeric, number));
            }
        }
    }
}

/// <summary>
/// Lucene fields kept for reuse by one indexing thread: a field reused across documents reuses its
/// token stream too, where a new field allocates one (with its attributes) per value; that was most
/// of the indexer's allocations. Not thread-safe; one pool per writer thread.
/// </summary>
public sealed class FieldPool
{
    private const int MaxPooled = 200_000;
    private readonly Dictionary<(int Kind, string Name), Stack<Field>> _free = [];
    private int _pooled;

    public Field Term(string name, string value)
    {
        if (Take(0, name) is { } field)
        {
            field.SetStringValue(value);
            return field;
        }

        return new StringField(name, value, Field.Store.NO);
    }

    public Field Sorted(string name, string value)
    {
        if (Take(1, name) is { } field)
        {
            field.SetBytesValue(new BytesRef(value));
            return field;
        }

        return new SortedDocValuesField(name, new BytesRef(value));
    }

    public Field SortedSet(string name, string value)
    {
        if (Take(2, name) is { } field)
        {
            field.SetBytesValue(new BytesRef(value));
            return field;
        }

        return new SortedSetDocValuesField(name, new BytesRef(value));
    }

    public Field Number(string name, double value)
    {
        if (Take(3, name) is { } field)
        {
            field.SetDoubleValue(value);
            return field;
        }

        return new DoubleField(name, value, ThingDocument.NumberType);
    }

    public Field DoubleValues(string name, double value)
    {
        if (Take(4, name) is { } field)
        {
            field.SetDoubleValue(value);
            return field;
        }

        return new DoubleDocValuesField(name, value);
    }

    /// <summary>Takes back the fields of a document the writer has consumed.</summary>
    public void Return(Document document)
    {
        ArgumentNullException.ThrowIfNull(document);
        foreach (var indexable in document.Fields)
        {
            if (_pooled >= MaxPooled || indexable is not Field field)
            {
                continue;
            }

            var kind = field switch
            {
                StringField => 0,
                SortedDocValuesField => 1,
                SortedSetDocValuesField => 2,
                DoubleField => 3,
                DoubleDocValuesField => 4,
                _ => -1,
            };
            if (kind < 0)
            {
                continue;
            }

            if (!_free.TryGetValue((kind, field.Name), out var stack))
            {
                _free[(kind, field.Name)] = stack = new Stack<Field>();
            }

            stack.Push(field);
            _pooled++;
        }
    }

    private Field? Take(int kind, string name)
    {
        if (_free.TryGetValue((kind, name), out var stack) && stack.TryPop(out var field))
        {
            _pooled--;
            return field;
        }

        return null;
    }
}
