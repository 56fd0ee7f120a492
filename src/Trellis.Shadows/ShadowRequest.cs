using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Unicode;

namespace Trellis.Shadows;

/// <summary>A validated <c>/update</c> request.</summary>
public sealed class ShadowUpdate
{
    /// <summary>The desired patch (null when the request has no desired section).</summary>
    public JsonObject? Desired { get; init; }

    public JsonObject? Reported { get; init; }

    /// <summary><c>"desired": null</c>: remove the whole section.</summary>
    public bool ClearDesired { get; init; }

    public bool ClearReported { get; init; }

    /// <summary>The version the client expects the shadow to have, when given.</summary>
    public long? Version { get; init; }

    public string? ClientToken { get; init; }

    /// <summary>The request's <c>state</c> as sent (echoed in <c>/update/accepted</c>).</summary>
    public required JsonObject State { get; init; }

    /// <summary>Whether the request touches desired at all (only then is a delta published).</summary>
    public bool TouchesDesired => Desired is not null || ClearDesired;
}

/// <summary>Parses and validates request payloads with AWS's rules and error messages.</summary>
public static class ShadowRequest
{
    private static readonly JsonNodeOptions NodeOptions = new() { PropertyNameCaseInsensitive = false };
    private static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 64 };

    /// <summary>Parses a <c>/get</c> or <c>/delete</c> payload: empty, or an object with an optional <c>clientToken</c>.</summary>
    public static ShadowError? ParseSimple(ReadOnlySpan<byte> payload, ShadowOptions options, out string? clientToken)
    {
        clientToken = null;
        if (payload.IsEmpty || payload.Trim(" \t\r\n"u8).IsEmpty)
        {
            return null;
        }

        if (payload.Length > options.MaxDocumentBytes)
        {
            return ShadowError.TooLarge;
        }

        var error = ParseObject(payload, out var root);
        if (error is not null)
        {
            return error;
        }

        return ReadClientToken(root!, options, out clientToken);
    }

    /// <summary>Parses an <c>/update</c> payload.</summary>
    public static ShadowError? ParseUpdate(ReadOnlySpan<byte> payload, ShadowOptions options, out ShadowUpdate? update, out string? clientToken)
    {
        update = null;
        clientToken = null;
        if (payload.Length > options.MaxDocumentBytes)
        {
            return ShadowError.TooLarge;
        }

        var error = ParseObject(payload, out var root);
        if (error is not null)
        {
            return error;
        }

        // The token is read first so that every later rejection can still echo it.
        error = ReadClientToken(root!, options, out clientToken);
        if (error is not null)
        {
            return error;
        }

        long? version = null;
        if (root!.TryGetPropertyValue("version", out var versionNode))
        {
            if (versionNode is not JsonValue v || !v.TryGetValue<long>(out var parsed) || parsed < 0)
            {
                return ShadowError.Invalid("Invalid version");
            }

            version = parsed;
        }

        if (!root.TryGetPropertyValue("state", out var stateNode) || stateNode is null)
        {
            return ShadowError.Invalid("Missing required node: state");
        }

        if (stateNode is not JsonObject state)
        {
            return ShadowError.Invalid("State node must be an object");
        }

        JsonObject? desired = null, reported = null;
        bool clearDesired = false, clearReported = false;
        foreach (var (name, value) in state)
        {
            switch (name)
            {
                case "desired":
                    error = ReadSection(value, "Desired", options, out desired, out clearDesired);
                    break;
                case "reported":
                    error = ReadSection(value, "Reported", options, out reported, out clearReported);
                    break;
                default:
                    error = ShadowError.Invalid($"State contains an invalid node: '{name}'");
                    break;
            }

            if (error is not null)
            {
                return error;
            }
        }

        update = new ShadowUpdate
        {
            Desired = desired,
            Reported = reported,
            ClearDesired = clearDesired,
            ClearReported = clearReported,
            Version = version,
            ClientToken = clientToken,
            State = state,
        };
        return null;
    }

    private static ShadowError? ParseObject(ReadOnlySpan<byte> payload, out JsonObject? root)
    {
        root = null;
        if (!Utf8.IsValid(payload))
        {
            return ShadowError.NotUtf8;
        }

        JsonNode? node;
        try
        {
            node = JsonNode.Parse(payload, NodeOptions, DocumentOptions);
        }
        catch (JsonException)
        {
            return ShadowError.InvalidJson;
        }

        if (node is not JsonObject obj)
        {
            return ShadowError.InvalidJson;
        }

        root = obj;
        return null;
    }

    private static ShadowError? ReadClientToken(JsonObject root, ShadowOptions options, out string? clientToken)
    {
        clientToken = null;
        if (!root.TryGetPropertyValue("clientToken", out var tokenNode))
        {
            return null;
        }

        if (tokenNode is not JsonValue value || !value.TryGetValue<string>(out var token) || token.Length == 0
            || Encoding.UTF8.GetByteCount(token) > options.MaxClientTokenBytes)
        {
            return ShadowError.Invalid("Invalid clientToken");
        }

        clientToken = token;
        return null;
    }

    private static ShadowError? ReadSection(JsonNode? value, string label, ShadowOptions options, out JsonObject? section, out bool clear)
    {
        section = null;
        clear = false;
        if (value is null)
        {
            clear = true;
            return null;
        }

        if (value is not JsonObject obj)
        {
            return ShadowError.Invalid($"{label} node must be an object");
        }

        var depth = Depth(obj);
        if (depth > options.MaxDepth)
        {
            return ShadowError.Invalid($"JSON contains too many levels of nesting; maximum is {options.MaxDepth}");
        }

        if (ArrayHasNull(obj))
        {
            return ShadowError.Invalid("Arrays in the state may not contain null values");
        }

        section = obj;
        return null;
    }

    /// <summary>Nesting depth of objects and arrays; the outermost object counts as 1.</summary>
    internal static int Depth(JsonNode? node) => node switch
    {
        JsonObject obj => 1 + (obj.Count == 0 ? 0 : obj.Max(p => Depth(p.Value))),
        JsonArray array => 1 + (array.Count == 0 ? 0 : array.Max(Depth)),
        _ => 0,
    };

    private static bool ArrayHasNull(JsonNode? node) => node switch
    {
        JsonObject obj => obj.Any(p => ArrayHasNull(p.Value)),
        JsonArray array => array.Any(v => v is null || ArrayHasNull(v)),
        _ => false,
    };
}
