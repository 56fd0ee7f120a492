using System.Text.Json.Nodes;

namespace Trellis.Shadows;

/// <summary>
/// The stored state of one shadow: desired and reported sections with their per-field metadata
/// (timestamps), the version and the time of the last change. A deleted shadow keeps its version
/// so that the next update continues counting (as AWS does). Instances are never mutated once
/// published; an update works on a deep copy.
/// </summary>
public sealed class ShadowDocument
{
    public JsonObject? Desired { get; private set; }

    public JsonObject? Reported { get; private set; }

    public JsonObject? DesiredMetadata { get; private set; }

    public JsonObject? ReportedMetadata { get; private set; }

    /// <summary>Incremented by every accepted update; kept across a delete.</summary>
    public long Version { get; private set; }

    /// <summary>Epoch seconds of the last change.</summary>
    public long Timestamp { get; private set; }

    /// <summary>False for a shadow that never existed or was deleted.</summary>
    public bool Exists { get; private set; }

    private string? _storageJson;
    private int _stateBytes;

    public static ShadowDocument Absent(long version = 0) => new() { Version = version };

    /// <summary>Applies a validated update, returning the new document (this one is unchanged).</summary>
    public ShadowDocument Apply(ShadowUpdate update, long timestamp)
    {
        var next = new ShadowDocument
        {
            Desired = Exists ? (JsonObject?)Desired?.DeepClone() : null,
            Reported = Exists ? (JsonObject?)Reported?.DeepClone() : null,
            DesiredMetadata = Exists ? (JsonObject?)DesiredMetadata?.DeepClone() : null,
            ReportedMetadata = Exists ? (JsonObject?)ReportedMetadata?.DeepClone() : null,
            Version = Version + 1,
            Timestamp = timestamp,
            Exists = true,
        };

        if (update.ClearDesired)
        {
            next.Desired = null;
            next.DesiredMetadata = null;
        }
        else if (update.Desired is { } desired)
        {
            next.Desired ??= [];
            next.DesiredMetadata ??= [];
            Merge(next.Desired, desired, next.DesiredMetadata, timestamp);
            if (next.Desired.Count == 0)
            {
                next.Desired = null;
                next.DesiredMetadata = null;
            }
        }

        if (update.ClearReported)
        {
            next.Reported = null;
            next.ReportedMetadata = null;
        }
        else if (update.Reported is { } reported)
        {
            next.Reported ??= [];
            next.ReportedMetadata ??= [];
            Merge(next.Reported, reported, next.ReportedMetadata, timestamp);
            if (next.Reported.Count == 0)
            {
                next.Reported = null;
                next.ReportedMetadata = null;
            }
        }

        return next;
    }

    /// <summary>The document after a delete: no state, same version.</summary>
    public ShadowDocument Deleted(long timestamp) => new() { Version = Version, Timestamp = timestamp };

    /// <summary>Keys of desired that are missing from reported or differ from it, with full paths for nested objects; null when none.</summary>
    public JsonObject? Delta() => Desired is null ? null : DeltaOf(Desired, Reported);

    /// <summary>The metadata of the delta's fields (the desired timestamps).</summary>
    public JsonObject? DeltaMetadata(JsonObject delta) => DesiredMetadata is null ? null : Pick(delta, DesiredMetadata);

    /// <summary>Size of the state document (desired and reported, no metadata) as compact UTF-8 JSON.</summary>
    public int StateBytes()
    {
        Serialize();
        return _stateBytes;
    }

    /// <summary><c>{"desired": …, "reported": …}</c> (sections that exist), optionally with the delta.</summary>
    public JsonObject StateNode(bool withDelta)
    {
        var state = new JsonObject();
        if (Desired is not null)
        {
            state["desired"] = Desired.DeepClone();
        }

        if (Reported is not null)
        {
            state["reported"] = Reported.DeepClone();
        }

        if (withDelta && Delta() is { } delta)
        {
            state["delta"] = delta;
        }

        return state;
    }

    public JsonObject MetadataNode()
    {
        var metadata = new JsonObject();
        if (DesiredMetadata is not null)
        {
            metadata["desired"] = DesiredMetadata.DeepClone();
        }

        if (ReportedMetadata is not null)
        {
            metadata["reported"] = ReportedMetadata.DeepClone();
        }

        return metadata;
    }

    /// <summary>The stored form: state, metadata and timestamp (the version is kept in its own column).</summary>
    public string ToStorageJson()
    {
        Serialize();
        return _storageJson!;
    }

    /// <summary>
    /// Writes the stored form once, straight from the nodes (no copies), and notes the size of the
    /// state part on the way. A document is not changed after <see cref="Apply"/> returns it.
    /// </summary>
    private void Serialize()
    {
        if (_storageJson is not null)
        {
            return;
        }

        var buffer = new System.Buffers.ArrayBufferWriter<byte>(512);
        using (var writer = new System.Text.Json.Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WritePropertyName("state");
            writer.Flush();
            var stateStart = buffer.WrittenCount;
            WriteSections(writer, Desired, Reported);
            writer.Flush();
            _stateBytes = buffer.WrittenCount - stateStart;
            writer.WritePropertyName("metadata");
            WriteSections(writer, DesiredMetadata, ReportedMetadata);
            writer.WriteNumber("timestamp", Timestamp);
            writer.WriteEndObject();
        }

        _storageJson = System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static void WriteSections(System.Text.Json.Utf8JsonWriter writer, JsonObject? desired, JsonObject? reported)
    {
        writer.WriteStartObject();
        if (desired is not null)
        {
            writer.WritePropertyName("desired");
            desired.WriteTo(writer);
        }

        if (reported is not null)
        {
            writer.WritePropertyName("reported");
            reported.WriteTo(writer);
        }

        writer.WriteEndObject();
    }

    public static ShadowDocument FromStorage(string? json, long version, bool deleted)
    {
        if (deleted || json is null)
        {
            return Absent(version);
        }

        var root = JsonNode.Parse(json)!.AsObject();
        var state = root["state"]?.AsObject();
        var metadata = root["metadata"]?.AsObject();
        return new ShadowDocument
        {
            Desired = (JsonObject?)state?["desired"]?.DeepClone(),
            Reported = (JsonObject?)state?["reported"]?.DeepClone(),
            DesiredMetadata = (JsonObject?)metadata?["desired"]?.DeepClone(),
            ReportedMetadata = (JsonObject?)metadata?["reported"]?.DeepClone(),
            Timestamp = root["timestamp"]?.GetValue<long>() ?? 0,
            Version = version,
            Exists = true,
        };
    }

    /// <summary>
    /// Merges <paramref name="patch"/> into <paramref name="target"/>: objects merge key by key,
    /// null deletes a key, anything else (values, arrays) replaces. Objects left empty are removed.
    /// </summary>
    private static void Merge(JsonObject target, JsonObject patch, JsonObject metadata, long timestamp)
    {
        foreach (var (name, value) in patch)
        {
            if (value is null)
            {
                target.Remove(name);
                metadata.Remove(name);
                continue;
            }

            if (value is JsonObject patchObject)
            {
                if (target[name] is not JsonObject child)
                {
                    child = [];
                    target[name] = child;
                }

                if (metadata[name] is not JsonObject childMetadata)
                {
                    childMetadata = [];
                    metadata[name] = childMetadata;
                }

                Merge(child, patchObject, childMetadata, timestamp);
                if (child.Count == 0)
                {
                    target.Remove(name);
                    metadata.Remove(name);
                }

                continue;
            }

            target[name] = value.DeepClone();
            metadata[name] = MetadataFor(value, timestamp);
        }
    }

    /// <summary>Metadata mirrors the value: a timestamp per leaf, an array of them for an array.</summary>
    internal static JsonNode MetadataFor(JsonNode? value, long timestamp) => value switch
    {
        JsonObject obj => new JsonObject(obj.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)MetadataFor(p.Value, timestamp)))),
        JsonArray array => new JsonArray([.. array.Select(v => (JsonNode?)MetadataFor(v, timestamp))]),
        _ => new JsonObject { ["timestamp"] = timestamp },
    };

    private static JsonObject? DeltaOf(JsonObject desired, JsonObject? reported)
    {
        JsonObject? delta = null;
        foreach (var (name, want) in desired)
        {
            var have = reported?[name];
            if (want is JsonObject wantObject && have is JsonObject haveObject)
            {
                if (DeltaOf(wantObject, haveObject) is { } nested)
                {
                    (delta ??= [])[name] = nested;
                }
            }
            else if (have is null || !JsonNode.DeepEquals(want, have))
            {
                (delta ??= [])[name] = want?.DeepClone();
            }
        }

        return delta;
    }

    private static JsonObject Pick(JsonObject shape, JsonObject metadata)
    {
        var picked = new JsonObject();
        foreach (var (name, value) in shape)
        {
            var meta = metadata[name];
            if (meta is null)
            {
                continue;
            }

            picked[name] = value is JsonObject nested && meta is JsonObject nestedMeta && nestedMeta["timestamp"] is null
                ? Pick(nested, nestedMeta)
                : meta.DeepClone();
        }

        return picked;
    }
}
