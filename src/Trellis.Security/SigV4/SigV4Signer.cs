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
        string accessKeyId, string secret, string region, string service, DateTimeOffset now)
    {
        var amzDate = now.UtcDateTime.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
        {
            ["host"] = host,
            ["x-amz-date"] = amzDate,
            ["x-amz-content-sha256"] = Convert.ToHexStringLower(SHA256.HashData(body.Span)),
        };
        const string signedHeaders = "host;x-amz-content-sha256;x-amz-date";
        var signature = SigV4Verifier.Signature(new SigV4Request(method, rawPath, rawQuery, headers, body), signedHeaders, secret, amzDate, region, service);
        headers["authorization"] = $"AWS4-HMAC-SHA256 Credential={accessKeyId}/{amzDate[..8]}/{region}/{service}/aws4_request, SignedHeaders={signedHeaders}, Signature={signature}";
        headers.Remove("host");
        return headers;
    }
}
