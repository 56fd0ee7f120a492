using System.Text.Json;

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

    public static Result<string?> OptionalString(JsonObject body, string name) =>
        Member(body, name) is not { } node ? (string?)null
        : node is JsonValue value && value.TryGetValue<string>(out var s) ? s
        : Wrong(name, "a string");

    public static Result<string> RequiredString(JsonObject body, string name)
    {
        var value = OptionalString(body, name);
        if (!value.IsSuccess)
        {
            return value.Error!;
        }

        return value.Value is { Length: > 0 } s ? s : new TrellisError.InvalidRequest($"'{name}' is required.");
    }

    public static Result<long?> OptionalLong(JsonObject body, string name) =>
        Member(body, name) is not { } node ? (long?)null
        : node is JsonValue value && value.TryGetValue<long>(out var l) ? l
        : Wrong(name, "an integer");

    /// <summary>A member's value; null when it is absent or null (as AWS treats an explicit null).</summary>
    private static JsonNode? Member(JsonObject body, string name) => body.TryGetPropertyValue(name, out var node) ? node : null;

    private static TrellisError Wrong(string name, string expected) => new TrellisError.InvalidRequest($"'{name}' must be {expected}.");

    /// <summary>A query-string value, or null when it is absent or empty.</summary>
    public static string? QueryString(HttpRequest request, string name) => request.Query[name].ToString() is { Length: > 0 } value ? value : null;

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
