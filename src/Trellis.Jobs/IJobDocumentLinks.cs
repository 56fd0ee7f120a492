using Trellis.Core.Errors;

namespace Trellis.Jobs;

/// <summary>
/// Fills a job document's <c>${aws:iot:s3-presigned-url:firmware/NAME}</c> placeholders with
/// download links when the document goes to a device (each device gets fresh links).
/// </summary>
public interface IJobDocumentLinks
{
    /// <summary>The document with its placeholders replaced by links valid for <paramref name="expiresInSec"/> (the job's presignedUrlConfig).</summary>
    string Resolve(string document, long? expiresInSec);

    /// <summary>The first firmware name a placeholder names that does not exist, or null.</summary>
    string? MissingReference(string document);

    /// <summary>
    /// The text of a job document given by <c>documentSource</c> (AWS: an S3 URL): its last path
    /// segment names a file uploaded to the firmware store; the bucket is not used.
    /// </summary>
    Result<string> ReadDocument(string documentSource, int maxBytes);
}
