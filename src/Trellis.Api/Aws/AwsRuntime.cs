using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Trellis.Api.Aws;

/// <summary>One operation of an AWS service model: where it is served and what it answers on success.</summary>
/// <param name="Service">The botocore model (<c>iot</c>, <c>iot-data</c>, <c>iot-jobs-data</c>).</param>
/// <param name="SigningName">The SigV4 service name its requests are signed for.</param>
/// <param name="Operation">The operation's name in the model (<c>CreateThing</c>).</param>
/// <param name="Method">The HTTP method.</param>
/// <param name="UriTemplate">The model's request URI, with <c>{member}</c> and greedy <c>{member+}</c> labels.</param>
/// <param name="SuccessCode">The HTTP status of a success.</param>
/// <param name="Implemented">Whether Trellis serves it through the dispatcher (listed in operations.txt).</param>
public sealed record AwsRoute(string Service, string SigningName, string Operation, string Method, string UriTemplate, int SuccessCode, bool Implemented)
{
    /// <summary>
    /// Operations whose last label takes slashes as sent, not only as <c>%2F</c> (AWS's own endpoint
    /// takes a topic either way, and curl users send <c>/topics/a/b</c>).
    /// </summary>
    private static readonly HashSet<string> SlashLabels = new(StringComparer.Ordinal) { "iot-data:Publish", "iot-data:GetRetainedMessage" };

    /// <summary>The URI template as an ASP.NET route pattern: a greedy <c>{name+}</c> becomes <c>{**name}</c>.</summary>
    public string RoutePattern
    {
        get
        {
            var pattern = Regex.Replace(UriTemplate.Split('?')[0], @"\{([A-Za-z0-9_]+)\+\}", "{**$1}");
            return SlashLabels.Contains(Service + ":" + Operation) ? Regex.Replace(pattern, @"\{([A-Za-z0-9_]+)\}$", "{**$1}") : pattern;
        }
    }
}

/// <summary>Where devices reach this server, for DescribeEndpoint (known once the listeners are bound).</summary>
public sealed class IotEndpoints(Func<string> tls, Func<string>? api = null)
{
    /// <summary>The MQTT-over-TLS host, with <c>:port</c> when it is not 8883.</summary>
    public string Tls => tls();

    /// <summary>
    /// The HTTP API devices and SDKs use for the jobs and shadow data planes: <c>host:port</c> of the
    /// HTTPS listener when it is on (AWS's SDKs put <c>https://</c> in front), else the plain URL.
    /// </summary>
    public string Api => api?.Invoke() ?? tls();
}

/// <summary>
/// The limit on key pairs the server makes (CreateProvisioningClaim, as <c>$aws/certificates/create</c>):
/// null when <c>principal</c> may have one more now, else why not.
/// </summary>
public interface IKeyPairLimit
{
    string? Refusal(string principal);
}

/// <summary>The input or output of an operation whose model has none.</summary>
public sealed record AwsEmpty
{
    public static readonly AwsEmpty Instance = new();
}

/// <summary>A handler's refusal: the dispatcher answers it as AWS does (status from the error catalogue, <c>x-amzn-ErrorType</c>, JSON message).</summary>
public sealed class AwsErrorException : Exception
{
    public AwsErrorException(TrellisError error)
        : base(error?.Message)
    {
        ArgumentNullException.ThrowIfNull(error);
        Error = error;
        ErrorType = error.Code;
        Status = AwsResults.StatusFor(error);
    }

    /// <summary>An error with its own type and status (the shadow service's, which carry AWS's codes).</summary>
    public AwsErrorException(string errorType, int status, string message)
        : base(message)
    {
        ErrorType = errorType;
        Status = status;
    }

    /// <summary>The domain's error, when the refusal came from one (its status comes from the catalogue).</summary>
    public TrellisError? Error { get; }

    public string ErrorType { get; }

    public int Status { get; }
}

/// <summary>
/// Reads one request for the generated binders: members from the route values, query string, headers
/// and JSON body, each checked against its shape; every violation is collected with the member's path
/// and answered together as AWS does (<c>InvalidRequestException</c>, "N validation errors detected: …").
/// </summary>
public sealed class AwsRequestReader
{
    private readonly HttpContext _context;
    private readonly List<string> _errors = [];
    private readonly byte[] _raw;
    private JsonDocument? _document;
    private string? _refusal;

    private AwsRequestReader(HttpContext context, byte[] raw)
    {
        _context = context;
        _raw = raw;
    }

    /// <summary>True while nothing was refused.</summary>
    public bool IsValid => _refusal is null && _errors.Count == 0;

    /// <summary>The body's top-level JSON object (undefined when there is no body).</summary>
    public JsonElement Body => _document?.RootElement ?? default;

    /// <summary>Reads the body (already bounded and hash-checked by the SigV4 middleware) and parses it when there is one.</summary>
    /// <param name="context">The request.</param>
    /// <param name="rawBody">The operation's payload is the body as sent (a blob: shadow documents, MQTT payloads): do not parse it.</param>
    /// <param name="readBody">False when the operation's input has nothing in the body: none is read.</param>
    public static async Task<AwsRequestReader> CreateAsync(HttpContext context, bool rawBody = false, bool readBody = true)
    {
        ArgumentNullException.ThrowIfNull(context);
        byte[] raw;
        if (!readBody)
        {
            raw = [];
        }
        else if (context.Request.Body is MemoryStream received)
        {
            // The SigV4 middleware leaves the verified body in memory: one copy out of its pooled buffer.
            raw = received.ToArray();
        }
        else
        {
            using var buffer = new MemoryStream();
            await context.Request.Body.CopyToAsync(buffer, context.RequestAborted);
            raw = buffer.ToArray();
        }

        var reader = new AwsRequestReader(context, raw);
        if (!rawBody)
        {
            reader.ParseBody();
        }

        if (reader._document is { } document)
        {
            context.Response.RegisterForDispose(document);
        }
        return reader;
    }

    /// <summary>Joins a member's name to its parent's path (<c>attributePayload.merge</c>).</summary>
    public static string Path(string parent, string member) => parent.Length == 0 ? member : parent + "." + member;

    /// <summary>Answers the request with what was refused.</summary>
    public Task RefuseAsync()
    {
        var message = _refusal ?? (_errors.Count == 1
            ? "1 validation error detected: " + _errors[0]
            : $"{_errors.Count} validation errors detected: " + string.Join("; ", _errors));
        return AwsResults.Error("InvalidRequestException", StatusCodes.Status400BadRequest, message).ExecuteAsync(_context);
    }

    // ---- locations -------------------------------------------------------------------------

    /// <summary>A URI label. Routing decodes every escape but <c>%2F</c> (a slash inside one segment, as in an ARN sent as a label): that one too.</summary>
    public string? Uri(string name) => _context.GetRouteValue(name)?.ToString()?.Replace("%2F", "/", StringComparison.OrdinalIgnoreCase);

    public string? Query(string name) => _context.Request.Query.TryGetValue(name, out var v) && v.Count > 0 ? v[^1] : null;

    public IReadOnlyList<string>? QueryStrings(string name) =>
        _context.Request.Query.TryGetValue(name, out var v) && v.Count > 0 ? [.. v.Where(s => s is not null).Select(s => s!)] : null;

    /// <summary>A map member bound to the query string: every parameter of it.</summary>
    public IReadOnlyDictionary<string, string?> QueryMap() =>
        _context.Request.Query.ToDictionary(q => q.Key, q => (string?)q.Value.ToString(), StringComparer.Ordinal);

    public string? Header(string name) => _context.Request.Headers.TryGetValue(name, out var v) && v.Count > 0 ? v.ToString() : null;

    public IReadOnlyDictionary<string, string?>? Headers(string prefix) =>
        _context.Request.Headers.Where(h => h.Key.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            .ToDictionary(h => h.Key[prefix.Length..], h => (string?)h.Value.ToString(), StringComparer.OrdinalIgnoreCase);

    public byte[]? RawBody() => _raw.Length == 0 ? null : _raw;

    /// <summary>
    /// Records a name, ARN or id the request acts on for the audit log (<c>trellis.auditTarget</c>:
    /// <c>thingGroupName=… thingName=…</c>), whether it came in the URI, a header or the body.
    /// </summary>
    public void Target(string member, string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            return;
        }

        var entry = member + "=" + value;
        _context.Items[AuditTargetKey] = _context.Items[AuditTargetKey] is string earlier ? earlier + " " + entry : entry;
    }

    /// <summary>Where <see cref="Target"/> leaves the audit target in <see cref="HttpContext.Items"/>.</summary>
    public const string AuditTargetKey = "trellis.auditTarget";

    /// <summary>A member of a JSON object; undefined when absent or null (AWS treats an explicit null as absent).</summary>
    public static JsonElement Member(JsonElement obj, string name) =>
        obj.ValueKind == JsonValueKind.Object && obj.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : default;

    // ---- scalars from the URI, query string and headers ------------------------------------

    public int? ParseInt(string? raw, string path) => raw is null ? null
        : int.TryParse(raw, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v) ? v : Invalid<int>(raw, path, "an integer");

    public long? ParseLong(string? raw, string path) => raw is null ? null
        : long.TryParse(raw, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v) ? v : Invalid<long>(raw, path, "an integer");

    public double? ParseDouble(string? raw, string path) => raw is null ? null
        : double.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v) ? v : Invalid<double>(raw, path, "a number");

    public bool? ParseBool(string? raw, string path) => raw switch
    {
        null => null,
        "true" or "True" or "TRUE" => true,
        "false" or "False" or "FALSE" => false,
        _ => Invalid<bool>(raw, path, "true or false"),
    };

    public DateTimeOffset? ParseTimestamp(string? raw, string path)
    {
        if (raw is null)
        {
            return null;
        }

        if (double.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) && double.IsFinite(seconds))
        {
            return FromEpochSeconds(seconds, raw, path);
        }

        return DateTimeOffset.TryParse(raw, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t) ? t : Invalid<DateTimeOffset>(raw, path, "a timestamp");
    }

    // ---- JSON members ------------------------------------------------------------------------

    public string? ReadString(JsonElement e, string path) => e.ValueKind switch
    {
        JsonValueKind.Undefined or JsonValueKind.Null => null,
        JsonValueKind.String => e.GetString(),
        _ => WrongType<string>(e, path, "a string"),
    };

    public int? ReadInt(JsonElement e, string path) => e.ValueKind switch
    {
        JsonValueKind.Undefined or JsonValueKind.Null => null,
        JsonValueKind.Number when e.TryGetInt32(out var v) => v,
        _ => WrongTypeValue<int>(e, path, "an integer"),
    };

    public long? ReadLong(JsonElement e, string path) => e.ValueKind switch
    {
        JsonValueKind.Undefined or JsonValueKind.Null => null,
        JsonValueKind.Number when e.TryGetInt64(out var v) => v,
        _ => WrongTypeValue<long>(e, path, "an integer"),
    };

    public double? ReadDouble(JsonElement e, string path) => e.ValueKind switch
    {
        JsonValueKind.Undefined or JsonValueKind.Null => null,
        JsonValueKind.Number when e.TryGetDouble(out var v) && double.IsFinite(v) => v,
        _ => WrongTypeValue<double>(e, path, "a number"),
    };

    public bool? ReadBool(JsonElement e, string path) => e.ValueKind switch
    {
        JsonValueKind.Undefined or JsonValueKind.Null => null,
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => WrongTypeValue<bool>(e, path, "true or false"),
    };

    /// <summary>rest-json body timestamps are epoch seconds (a fraction allowed); an ISO 8601 string is taken too.</summary>
    public DateTimeOffset? ReadTimestamp(JsonElement e, string path) => e.ValueKind switch
    {
        JsonValueKind.Undefined or JsonValueKind.Null => null,
        JsonValueKind.Number when e.TryGetDouble(out var s) && double.IsFinite(s) => FromEpochSeconds(s, e.GetRawText(), path),
        JsonValueKind.String => ParseTimestamp(e.GetString(), path),
        _ => WrongTypeValue<DateTimeOffset>(e, path, "a timestamp (epoch seconds)"),
    };

    /// <summary>A structure the model has that travels on as a JSON document (a rule's action): an object or absent.</summary>
    public System.Text.Json.Nodes.JsonObject? ReadDocument(JsonElement e, string path)
    {
        return e.ValueKind switch
        {
            JsonValueKind.Undefined or JsonValueKind.Null => null,
            JsonValueKind.Object => System.Text.Json.Nodes.JsonObject.Create(e.Clone()),
            _ => WrongType<System.Text.Json.Nodes.JsonObject>(e, path, "an object"),
        };
    }

    public byte[]? ReadBlob(JsonElement e, string path)
    {
        if (e.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null)
        {
            return null;
        }

        return e.ValueKind == JsonValueKind.String && e.TryGetBytesFromBase64(out var bytes) ? bytes : WrongType<byte[]>(e, path, "base64 data");
    }

    public IReadOnlyList<T>? ReadList<T>(JsonElement e, string path, Func<AwsRequestReader, JsonElement, string, T> item)
    {
        ArgumentNullException.ThrowIfNull(item);
        if (e.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null)
        {
            return null;
        }

        if (e.ValueKind != JsonValueKind.Array)
        {
            return WrongType<IReadOnlyList<T>>(e, path, "a list");
        }

        var list = new List<T>(e.GetArrayLength());
        var i = 0;
        foreach (var element in e.EnumerateArray())
        {
            var itemPath = path + "[" + i++ + "]";
            if (element.ValueKind == JsonValueKind.Null)
            {
                _errors.Add($"Value null at '{itemPath}' failed to satisfy constraint: Member must not be null");
                continue;
            }

            list.Add(item(this, element, itemPath));
        }

        return list;
    }

    public IReadOnlyDictionary<string, T>? ReadMap<T>(JsonElement e, string path, Func<AwsRequestReader, JsonElement, string, T> value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (e.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null)
        {
            return null;
        }

        if (e.ValueKind != JsonValueKind.Object)
        {
            return WrongType<IReadOnlyDictionary<string, T>>(e, path, "an object");
        }

        var map = new Dictionary<string, T>(StringComparer.Ordinal);
        foreach (var property in e.EnumerateObject())
        {
            // A null value stays null: in a map of strings it means "remove" (UpdateThing's attributes).
            map[property.Name] = value(this, property.Value, path + "." + property.Name);
        }

        return map;
    }

    public T? ReadObject<T>(JsonElement e, string path, Func<AwsRequestReader, JsonElement, string, T> read)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(read);
        if (e.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null)
        {
            return null;
        }

        return e.ValueKind == JsonValueKind.Object ? read(this, e, path) : WrongType<T>(e, path, "an object");
    }

    // ---- constraints ---------------------------------------------------------------------------

    public void Required(object? value, string path)
    {
        if (value is null)
        {
            _errors.Add($"Value null at '{path}' failed to satisfy constraint: Member must not be null");
        }
    }

    public void Length(string? value, string path, int min, int max)
    {
        if (value is null)
        {
            return;
        }

        if (value.Length < min)
        {
            _errors.Add($"Value '{Shown(value)}' at '{path}' failed to satisfy constraint: Member must have length greater than or equal to {min}");
        }
        else if (value.Length > max)
        {
            _errors.Add($"Value '{Shown(value)}' at '{path}' failed to satisfy constraint: Member must have length less than or equal to {max}");
        }
    }

    public void Count(int? count, string path, int min, int max)
    {
        if (count < min)
        {
            _errors.Add($"Value at '{path}' failed to satisfy constraint: Member must have at least {min} elements");
        }
        else if (count > max)
        {
            _errors.Add($"Value at '{path}' failed to satisfy constraint: Member must have at most {max} elements");
        }
    }

    public void Range(double? value, string path, double min, double max)
    {
        if (value < min)
        {
            _errors.Add($"Value '{value.Value.ToString(CultureInfo.InvariantCulture)}' at '{path}' failed to satisfy constraint: Member must have value greater than or equal to {min.ToString(CultureInfo.InvariantCulture)}");
        }
        else if (value > max)
        {
            _errors.Add($"Value '{value.Value.ToString(CultureInfo.InvariantCulture)}' at '{path}' failed to satisfy constraint: Member must have value less than or equal to {max.ToString(CultureInfo.InvariantCulture)}");
        }
    }

    public void Enum(string? value, string path, string[] allowed)
    {
        ArgumentNullException.ThrowIfNull(allowed);
        if (value is not null && Array.IndexOf(allowed, value) < 0)
        {
            _errors.Add($"Value '{Shown(value)}' at '{path}' failed to satisfy constraint: Member must satisfy enum value set: [{string.Join(", ", allowed)}]");
        }
    }

    public void Pattern(string? value, string path, Regex pattern)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        if (value is null)
        {
            return;
        }

        bool matches;
        try
        {
            matches = pattern.IsMatch(value);
        }
        catch (RegexMatchTimeoutException)
        {
            matches = false;
        }

        if (!matches)
        {
            var shown = pattern.ToString();
            _errors.Add($"Value '{Shown(value)}' at '{path}' failed to satisfy constraint: Member must satisfy regular expression pattern: {shown[4..^2]}");
        }
    }

    private static string Shown(string value) => value.Length <= 64 ? value : value[..64] + "…";

    private void ParseBody()
    {
        if (_raw.AsSpan().Trim(" \t\r\n"u8).IsEmpty)
        {
            return;
        }

        try
        {
            _document = JsonDocument.Parse(_raw, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            _refusal = $"The request body is not valid JSON: {e.Message}";
            return;
        }

        if (_document.RootElement.ValueKind != JsonValueKind.Object)
        {
            _refusal = "The request body must be a JSON object.";
        }
    }

    private DateTimeOffset? FromEpochSeconds(double seconds, string raw, string path)
    {
        if (seconds is < -62135596800 or > 253402300799)
        {
            return Invalid<DateTimeOffset>(raw, path, "a timestamp between years 1 and 9999");
        }

        return DateTimeOffset.FromUnixTimeMilliseconds((long)Math.Round(seconds * 1000));
    }

    private T? Invalid<T>(string raw, string path, string expected)
        where T : struct
    {
        _errors.Add($"Value '{Shown(raw)}' at '{path}' failed to satisfy constraint: Member must be {expected}");
        return null;
    }

    private T? WrongType<T>(JsonElement e, string path, string expected)
        where T : class
    {
        _errors.Add($"Value {Shown(e.GetRawText())} at '{path}' failed to satisfy constraint: Member must be {expected}");
        return null;
    }

    private T? WrongTypeValue<T>(JsonElement e, string path, string expected)
        where T : struct
    {
        _errors.Add($"Value {Shown(e.GetRawText())} at '{path}' failed to satisfy constraint: Member must be {expected}");
        return null;
    }
}

/// <summary>Writes an operation's output as AWS rest-json does.</summary>
public static class AwsResponse
{
    public static async Task WriteAsync(HttpContext context, int status, Action<Utf8JsonWriter>? body, Action<IHeaderDictionary>? headers)
    {
        ArgumentNullException.ThrowIfNull(context);
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            if (body is null)
            {
                writer.WriteStartObject();
                writer.WriteEndObject();
            }
            else
            {
                body(writer);
            }
        }

        context.Response.StatusCode = status;
        headers?.Invoke(context.Response.Headers);
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = buffer.WrittenCount;
        await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted);
    }

    /// <summary>An output whose payload member is the whole body (a blob: shadow documents, retained payloads).</summary>
    public static async Task WritePayloadAsync(HttpContext context, int status, byte[]? payload, Action<IHeaderDictionary>? headers)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Response.StatusCode = status;
        headers?.Invoke(context.Response.Headers);
        context.Response.ContentType = "application/json";
        var bytes = payload ?? [];
        context.Response.ContentLength = bytes.Length;
        await context.Response.Body.WriteAsync(bytes, context.RequestAborted);
    }
}

/// <summary>AWS's wire forms of values.</summary>
public static class AwsJson
{
    /// <summary>Epoch seconds with milliseconds, as rest-json bodies carry timestamps.</summary>
    public static double EpochSeconds(DateTimeOffset value) => value.ToUnixTimeMilliseconds() / 1000.0;

    public static string HeaderValue(object value) => value switch
    {
        DateTimeOffset t => t.ToString("R", CultureInfo.InvariantCulture),
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        byte[] bytes => Convert.ToBase64String(bytes),
        _ => value.ToString() ?? string.Empty,
    };

    /// <summary>UTF-8 text of a blob member, for handlers that take JSON documents as blobs.</summary>
    public static string Text(byte[] value) => Encoding.UTF8.GetString(value);
}
