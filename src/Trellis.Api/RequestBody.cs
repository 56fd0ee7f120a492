using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Trellis.Core.Errors;

namespace Trellis.Api;

/// <summary>Reads a JSON request body with precise errors for bad input.</summary>
public static class RequestBody
{
    /// <summary>Parses the body as a JSON object; an empty body is an empty object.</summary>
    public static async Task<Result<JsonObject>> ReadObjectAsync(HttpRequest request, CancellationToken cancellationToken = default)
    {
        request.EnableBuffering();
        request.Body.Position = 0;
        using var reader = new StreamReader(request.Body, leaveOpen: true);
        var text = await reader.ReadToEndAsync(cancellationToken);
        request.Body.Position = 0;
        if (string.IsNullOrWhiteSpace(text))
        {
            return new JsonObject();
        }

        try
        {
            return JsonNode.Parse(text) is JsonObject obj
                ? obj
                : new TrellisError.InvalidRequest("Request body must be a JSON object.");
        }
        catch (JsonException e)
        {
            return new TrellisError.InvalidRequest($"Request body is not valid JSON: {e.Message}");
        }
    }

    public static Result<string?> OptionalString(JsonObject body, string name)
    {
        if (!body.TryGetPropertyValue(name, out var node) || node is null)
        {
            return (string?)null;
        }

        return node is JsonValue value && value.TryGetValue<string>(out var s)
            ? s
            : new TrellisError.InvalidRequest($"'{name}' must be a string.");
    }

    public static Result<string> RequiredString(JsonObject body, string name)
    {
        var value = OptionalString(body, name);
        if (!value.IsSuccess)
        {
            return value.Error!;
        }

        return value.Value is { Length: > 0 } s ? s : new TrellisError.InvalidRequest($"'{name}' is required.");
    }

    public static Result<long?> OptionalLong(JsonObject body, string name)
    {
        if (!body.TryGetPropertyValue(name, out var node) || node is null)
        {
            return (long?)null;
        }

        return node is JsonValue value && value.TryGetValue<long>(out var l)
            ? l
            : new TrellisError.InvalidRequest($"'{name}' must be an integer.");
    }

    public static Result<bool?> OptionalBool(JsonObject body, string name)
    {
        if (!body.TryGetPropertyValue(name, out var node) || node is null)
        {
            return (bool?)null;
        }

        return node is JsonValue value && value.TryGetValue<bool>(out var b)
            ? b
            : new TrellisError.InvalidRequest($"'{name}' must be true or false.");
    }

    /// <summary>Reads <c>attributePayload</c>: <c>{ "attributes": { k: v }, "merge": bool }</c>.</summary>
    public static Result<(Dictionary<string, string?>? Attributes, bool Merge)> AttributePayload(JsonObject body)
    {
        if (!body.TryGetPropertyValue("attributePayload", out var node) || node is null)
        {
            return (null, false);
        }

        if (node is not JsonObject payload)
        {
            return new TrellisError.InvalidRequest("'attributePayload' must be an object.");
        }

        var merge = OptionalBool(payload, "merge");
        if (!merge.IsSuccess)
        {
            return merge.Error!;
        }

        Dictionary<string, string?>? attributes = null;
        if (payload.TryGetPropertyValue("attributes", out var attributesNode) && attributesNode is not null)
        {
            if (attributesNode is not JsonObject attributesObject)
            {
                return new TrellisError.InvalidRequest("'attributePayload.attributes' must be an object of strings.");
            }

            attributes = new Dictionary<string, string?>(StringComparer.Ordinal);
            foreach (var (key, value) in attributesObject)
            {
                if (value is null)
                {
                    attributes[key] = null;
                }
                else if (value is JsonValue v && v.TryGetValue<string>(out var s))
                {
                    attributes[key] = s;
                }
                else
                {
                    return new TrellisError.InvalidRequest($"Attribute '{key}' must be a string.");
                }
            }
        }

        return (attributes, merge.Value ?? false);
    }

    /// <summary>A query-string value, or null when it is absent or empty.</summary>
    public static string? QueryString(HttpRequest request, string name) => request.Query[name].ToString() is { Length: > 0 } value ? value : null;

    /// <summary>Query-string boolean as botocore sends it ("true"/"false").</summary>
    public static Result<bool> QueryBool(HttpRequest request, string name, bool fallback = false)
    {
        var raw = request.Query[name].ToString();
        if (raw.Length == 0)
        {
            return fallback;
        }

        return bool.TryParse(raw, out var value) ? value : new TrellisError.InvalidRequest($"Query parameter '{name}' must be true or false.");
    }

    public static Result<int?> QueryInt(HttpRequest request, string name)
    {
        var raw = request.Query[name].ToString();
        if (raw.Length == 0)
        {
            return (int?)null;
        }

        return int.TryParse(raw, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var value) && value > 0
            ? value
            : new TrellisError.InvalidRequest($"Query parameter '{name}' must be a positive integer.");
    }
}
