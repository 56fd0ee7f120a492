namespace Trellis.Security.SigV4;

/// <summary>The outcome of verifying a request: the access key on success, else the AWS error to send.</summary>
public sealed record SigV4Result(bool Success, string? AccessKeyId, string? ErrorType, string? Message)
{
    public static SigV4Result Ok(string accessKeyId) => new(true, accessKeyId, null, null);

    public static SigV4Result Fail(string errorType, string message) => new(false, null, errorType, message);
}
