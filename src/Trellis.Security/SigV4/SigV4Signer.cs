using System.Globalization;
using System.Security.Cryptography;

namespace Trellis.Security.SigV4;

/// <summary>Signs requests with AWS Signature Version 4 (the CLI's client side of <see cref="SigV4Verifier"/>).</summary>
public static class SigV4Signer
{
    /// <summary>
    /// The headers to add to a request: <c>x-amz-date</c>, <c>x-amz-content-sha256</c> and
    /// <c>authorization</c>. <paramref name="rawPath"/> and <paramref name="rawQuery"/> are as they
    /// go on the wire (already percent-encoded); <paramref name="host"/> is the Host header.
    /// </summary>
    public static Dictionary<string, string> Sign(string method, string host, string rawPath, string rawQuery, ReadOnlyMemory<byte> body,
        string accessKeyId, string secret, string region, string service, DateTimeOffset now) =>
        SignPayloadHash(method, host, rawPath, rawQuery, Convert.ToHexStringLower(SHA256.HashData(body.Span)), accessKeyId, secret, region, service, now);

    /// <summary>
    /// As <see cref="Sign"/>, for a body sent as a stream: <paramref name="payloadHash"/> is its
    /// SHA-256 (lower-case hex), computed beforehand; the server checks the signature before it reads
    /// the body and the hash once it has it.
    /// </summary>
    public static Dictionary<string, string> SignPayloadHash(string method, string host, string rawPath, string rawQuery, string payloadHash,
        string accessKeyId, string secret, string region, string service, DateTimeOffset now)
    {
        var amzDate = now.UtcDateTime.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
        {
            ["host"] = host,
            ["x-amz-date"] = amzDate,
            ["x-amz-content-sha256"] = payloadHash,
        };
        const string signedHeaders = "host;x-amz-content-sha256;x-amz-date";
        var signature = SigV4Verifier.SignatureWithHash(new SigV4Request(method, rawPath, rawQuery, headers, ReadOnlyMemory<byte>.Empty), signedHeaders, secret, amzDate, region, service, payloadHash);
        headers["authorization"] = $"AWS4-HMAC-SHA256 Credential={accessKeyId}/{amzDate[..8]}/{region}/{service}/aws4_request, SignedHeaders={signedHeaders}, Signature={signature}";
        headers.Remove("host");
        return headers;
    }
}
