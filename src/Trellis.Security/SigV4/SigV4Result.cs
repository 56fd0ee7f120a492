namespace Trellis.Security.SigV4;

/// <summary>The outcome of verifying a request: the access key on success, else the AWS error to send.</summary>
public sealed record SigV4Result(bool Success, string? AccessKeyId, string? ErrorType, string? Message, string? Service = null)
{
    /// <summary>A verified request: who signed it, and for which service (the credential scope's, e.g. <c>iot</c>, <c>iotdata</c>).</summary>
    public static SigV4Result Ok(string accessKeyId, string service) => new(true, accessKeyId, null, null, service);

    public static SigV4Result Fail(string errorType, string message) => new(false, null, errorType, message);
}
