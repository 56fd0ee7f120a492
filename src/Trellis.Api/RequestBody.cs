using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Trellis.Api;

/// <summary>Reads a JSON request body with precise errors for bad input.</summary>
public static class RequestBody
{
    /// <summary>Parses the body as a JSON object; an empty body is an empty object.</summary>
    public static async Task<Result<JsonObject>> ReadObjectAsync(HttpRequest request, CancellationToken cancellationToken = default)
    {
        var text = await ReadTextAsync(request, cancellationToken);
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

    /// <summary>
    /// Binds the body to <typeparamref name="T"/> through <see cref="ApiJson"/> (an empty body is <c>{}</c>),
    /// or says which member is wrong: unknown, missing, null or of the wrong type.
    /// </summary>
    public static async Task<Result<T>> ReadAsync<T>(HttpRequest request)
    {
        var text = await ReadTextAsync(request, request.HttpContext.RequestAborted);
        var info = (JsonTypeInfo<T>)ApiJson.Default.GetTypeInfo(typeof(T))!;
        try
        {
            return JsonSerializer.Deserialize(string.IsNullOrWhiteSpace(text) ? "{}" : text, info) is { } value
                ? value
                : new TrellisError.InvalidRequest("Request body must be a JSON object.");
        }
        catch (JsonException e)
        {
            return new TrellisError.InvalidRequest(Explain(e, info));
        }
    }

    private static string Explain(JsonException e, JsonTypeInfo info)
    {
        var known = string.Join(", ", info.Properties.Select(p => p.Name));
        var message = e.Message;
        if (message.Contains("could not be mapped", StringComparison.Ordinal) && Quoted(message) is { } unknown)
        {
            return $"Unknown member '{unknown}'; known members are {known}.";
        }

        if (message.Contains("missing required properties", StringComparison.Ordinal))
        {
            var names = message[(message.IndexOf("including:", StringComparison.Ordinal) + 10)..].Trim().TrimEnd('.');
            return $"{names} is required.";
        }

        var member = e.Path is { Length: > 2 } path && path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : Quoted(message);
        var wrongValue = message.Contains("could not be converted", StringComparison.Ordinal) || message.Contains("null", StringComparison.Ordinal);
        if (wrongValue && member is not null && info.Properties.FirstOrDefault(p => p.Name == member.Split('[')[0]) is { } property)
        {
            return $"'{member}' must be {Describe(property.PropertyType)}.";
        }

        return e.Path is null or "$"
            ? $"Request body is not valid JSON or not a JSON object (known members are {known})."
            : $"Request body is not valid JSON at {e.Path}: {e.Message}";
    }

    private static string? Quoted(string message)
    {
        var start = message.IndexOf('\'');
        var end = start < 0 ? -1 : message.IndexOf('\'', start + 1);
        return end > start ? message[(start + 1)..end] : null;
    }

    private static string Describe(Type type) => (Nullable.GetUnderlyingType(type) ?? type) switch
    {
        var t when t == typeof(string) => "a string",
        var t when t == typeof(bool) => "true or false",
        var t when t == typeof(long) || t == typeof(int) => "an integer",
        var t when t == typeof(double) => "a number",
        var t when t.IsAssignableTo(typeof(System.Collections.IEnumerable)) => "a list of strings",
        _ => "an object",
    };

    private static async Task<string> ReadTextAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        request.EnableBuffering();
        request.Body.Position = 0;
        using var reader = new StreamReader(request.Body, leaveOpen: true);
        var text = await reader.ReadToEndAsync(cancellationToken);
        request.Body.Position = 0;
        return text;
    }

    public static Result<string?> OptionalString(JsonObject body, string name) =>
        Member(body, name) is not { } node ? (string?)null
        : node is JsonValue value && value.TryGetValue<string>(out var s) ? s
        : Wrong(name, "a string");

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
