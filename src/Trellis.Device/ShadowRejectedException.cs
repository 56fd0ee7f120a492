namespace Trellis.Device;

/// <summary>The shadow service refused a request (the <c>…/rejected</c> document's code and message).</summary>
public sealed class ShadowRejectedException : Exception
{
    public ShadowRejectedException()
    {
    }

    public ShadowRejectedException(string message)
        : base(message)
    {
    }

    public ShadowRejectedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public ShadowRejectedException(int code, string message)
        : base($"shadow request rejected: {code} {message}")
    {
        Code = code;
        Reason = message;
    }

    /// <summary>HTTP-style status: 400 bad request, 404 no shadow, 409 version conflict, 413 too large, 429 throttled …</summary>
    public int Code { get; }

    /// <summary>The service's message, e.g. "Version conflict".</summary>
    public string? Reason { get; }
}
