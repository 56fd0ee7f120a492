namespace Trellis.Shadows;

/// <summary>
/// A refused shadow request: the code is the HTTP-style status AWS puts in <c>…/rejected</c>
/// documents and the iot-data API returns; <see cref="ErrorType"/> is the iot-data exception name.
/// </summary>
public sealed record ShadowError(int Code, string Message)
{
    public static ShadowError InvalidJson { get; } = new(400, "Invalid JSON");

    public static ShadowError NotUtf8 { get; } = new(415, "Unsupported documented encoding; supported encoding is UTF-8");

    public static ShadowError TooLarge { get; } = new(413, "The payload exceeds the maximum size allowed");

    public static ShadowError VersionConflict { get; } = new(409, "Version conflict");

    public static ShadowError Throttled { get; } = new(429, "Too Many Requests");

    public static ShadowError Internal { get; } = new(500, "Internal service failure");

    public static ShadowError Invalid(string message) => new(400, message);

    public static ShadowError NoShadow(ShadowKey key) => new(404, $"No shadow exists with name: '{(key.IsClassic ? key.Thing : key.Name)}'");

    public static ShadowError NoThing(string thing) => new(404, $"No thing exists with name: '{thing}'");

    /// <summary>The iot-data error type (<c>x-amzn-ErrorType</c>) for this code.</summary>
    public string ErrorType => Code switch
    {
        400 => "InvalidRequestException",
        401 => "UnauthorizedException",
        404 => "ResourceNotFoundException",
        409 => "ConflictException",
        413 => "RequestEntityTooLargeException",
        415 => "UnsupportedDocumentEncodingException",
        429 => "ThrottlingException",
        _ => "InternalFailureException",
    };
}
