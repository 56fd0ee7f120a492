using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Trellis.Security.SigV4;

/// <summary>
/// Verifies AWS Signature Version 4 (the Authorization header form that boto3 and the AWS CLI send).
/// Any region is accepted; the service in the scope must be one this endpoint serves.
/// </summary>
public sealed class SigV4Verifier(Func<string, string?> secretForAccessKey, TimeProvider time)
{
    /// <summary>AWS allows 15 minutes of clock skew.</summary>
    private static readonly TimeSpan MaxSkew = TimeSpan.FromMinutes(15);

    /// <summary>Every check (headers, then the signature over the hash of <see cref="SigV4Request.Body"/>).</summary>
    public SigV4Result Verify(SigV4Request request, IReadOnlyCollection<string> serviceNames)
    {
        var headers = VerifyHeaders(request, serviceNames);
        return headers.Success ? VerifySignature(request, Hex(SHA256.HashData(request.Body.Span))) : headers;
    }

    /// <summary>
    /// What can be checked before a byte of the body is read: the Authorization header's form, the
    /// service scope, x-amz-date (present, within 15 minutes, matching the credential's date),
    /// that host is signed, and that the access key is known. A request that fails here is refused
    /// without reading its body.
    /// </summary>
    public SigV4Result VerifyHeaders(SigV4Request request, IReadOnlyCollection<string> serviceNames)
    {
        if (!request.Headers.TryGetValue("authorization", out var authorization) || string.IsNullOrWhiteSpace(authorization))
        {
            return SigV4Result.Fail("MissingAuthenticationTokenException",
                "Missing Authentication Token: sign requests with SigV4 (boto3 and the AWS CLI do; credentials are in the data folder's 'credentials' file, profile 'trellis').");
        }

        const string Algorithm = "AWS4-HMAC-SHA256";
        if (!authorization.StartsWith(Algorithm + " ", StringComparison.Ordinal))
        {
            return SigV4Result.Fail("IncompleteSignatureException", $"Authorization header must use {Algorithm}.");
        }

        var (credential, signedHeaders, signature) = Parts(authorization);
        if (credential is null || signedHeaders is null || signature is null)
        {
            return SigV4Result.Fail("IncompleteSignatureException", "Authorization header needs Credential, SignedHeaders and Signature.");
        }

        var scope = credential.Split('/');
        if (scope.Length != 5 || scope[4] != "aws4_request")
        {
            return SigV4Result.Fail("IncompleteSignatureException", "Credential must be ACCESSKEY/yyyyMMdd/region/service/aws4_request.");
        }

        var (accessKey, date, region, service) = (scope[0], scope[1], scope[2], scope[3]);
        if (!serviceNames.Contains(service))
        {
            return SigV4Result.Fail("InvalidSignatureException", $"Credential should be scoped to a valid service: '{service}' is not one of {string.Join(", ", serviceNames)}.");
        }

        if (!request.Headers.TryGetValue("x-amz-date", out var amzDate)
            || !DateTimeOffset.TryParseExact(amzDate, "yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var signedAt))
        {
            return SigV4Result.Fail("IncompleteSignatureException", "X-Amz-Date header is missing or not in yyyyMMddTHHmmssZ form.");
        }

        var now = time.GetUtcNow();
        if ((now - signedAt).Duration() > MaxSkew)
        {
            return SigV4Result.Fail("InvalidSignatureException",
                $"Signature expired: {amzDate} is more than 15 minutes from the server time {now:yyyyMMdd'T'HHmmss'Z'}. Check the client's clock.");
        }

        if (!amzDate.StartsWith(date, StringComparison.Ordinal))
        {
            return SigV4Result.Fail("InvalidSignatureException", "Credential date does not match X-Amz-Date.");
        }

        if (!signedHeaders.Split(';').Contains("host"))
        {
            return SigV4Result.Fail("IncompleteSignatureException", "SignedHeaders must include host.");
        }

        if (secretForAccessKey(accessKey) is null)
        {
            return SigV4Result.Fail("UnrecognizedClientException", $"The access key '{accessKey}' is not known to this server.");
        }

        return SigV4Result.Ok(accessKey, service);
    }

    /// <summary>
    /// The signature over the request with <paramref name="payloadHash"/> (lower-case hex SHA-256)
    /// as its body's hash; call after <see cref="VerifyHeaders"/> succeeded. Give the hash of the
    /// body as received, or, before reading it, a signed x-amz-content-sha256 value, and then
    /// compare that value with the body's hash once read.
    /// </summary>
    public SigV4Result VerifySignature(SigV4Request request, string payloadHash)
    {
        var (credential, signedHeaders, signature) = Parts(request.Headers["authorization"]);
        var scope = credential!.Split('/');
        var (accessKey, region, service) = (scope[0], scope[2], scope[3]);
        var amzDate = request.Headers["x-amz-date"];
        var secret = secretForAccessKey(accessKey);
        if (secret is null)
        {
            return SigV4Result.Fail("UnrecognizedClientException", $"The access key '{accessKey}' is not known to this server.");
        }

        var expected = SignatureWithHash(request, signedHeaders!, secret, amzDate, region, service, payloadHash);
        var matches = CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(expected), Encoding.ASCII.GetBytes(signature!));
        if (!matches && CanonicalQuery(request.RawQuery, asSent: true) != CanonicalQuery(request.RawQuery, asSent: false))
        {
            // botocore and curl sign a query string that is already in the URL as sent (only
            // sorted), so `?state=ACTIVE,CLEARED` is signed with a bare comma: accept that form too.
            // It still covers every byte of the query, so nothing unsigned gets through.
            expected = SignatureWithHash(request, signedHeaders!, secret, amzDate, region, service, payloadHash, queryAsSent: true);
            matches = CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(expected), Encoding.ASCII.GetBytes(signature!));
        }

        if (!matches)
        {
            return SigV4Result.Fail("InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. Check your secret access key and signing method.");
        }

        return SigV4Result.Ok(accessKey, service);
    }

    /// <summary>Credential, SignedHeaders and Signature of an <c>AWS4-HMAC-SHA256 …</c> Authorization header (null where absent).</summary>
    private static (string? Credential, string? SignedHeaders, string? Signature) Parts(string authorization)
    {
        string? credential = null, signedHeaders = null, signature = null;
        foreach (var part in authorization["AWS4-HMAC-SHA256 ".Length..].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = part.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                continue;
            }

            var value = part[(eq + 1)..];
            switch (part[..eq])
            {
                case "Credential": credential = value; break;
                case "SignedHeaders": signedHeaders = value; break;
                case "Signature": signature = value; break;
            }
        }

        return (credential, signedHeaders, signature);
    }

    /// <summary>The SigV4 signature of a request (shared with <see cref="SigV4Signer"/>).</summary>
    internal static string Signature(SigV4Request request, string signedHeaders, string secret, string amzDate, string region, string service) =>
        SignatureWithHash(request, signedHeaders, secret, amzDate, region, service, Hex(SHA256.HashData(request.Body.Span)));

    internal static string SignatureWithHash(SigV4Request request, string signedHeaders, string secret, string amzDate, string region, string service, string payloadHash, bool queryAsSent = false)
    {
        var date = amzDate[..8];
        var canonical = CanonicalRequest(request, signedHeaders, payloadHash, queryAsSent);
        var stringToSign = $"AWS4-HMAC-SHA256\n{amzDate}\n{date}/{region}/{service}/aws4_request\n{Hex(SHA256.HashData(Encoding.UTF8.GetBytes(canonical)))}";
        var key = Hmac(Encoding.UTF8.GetBytes("AWS4" + secret), date);
        key = Hmac(key, region);
        key = Hmac(key, service);
        key = Hmac(key, "aws4_request");
        return Hex(Hmac(key, stringToSign));
    }

    private static string CanonicalRequest(SigV4Request request, string signedHeaders, string payloadHash, bool queryAsSent)
    {
        var builder = new StringBuilder();
        builder.Append(request.Method).Append('\n');
        builder.Append(CanonicalPath(request.RawPath)).Append('\n');
        builder.Append(CanonicalQuery(request.RawQuery, queryAsSent)).Append('\n');
        foreach (var name in signedHeaders.Split(';'))
        {
            request.Headers.TryGetValue(name, out var value);
            builder.Append(name).Append(':').Append(CollapseSpaces(value ?? string.Empty)).Append('\n');
        }

        builder.Append('\n').Append(signedHeaders).Append('\n');
        // The caller gives the hash of the body as received, or a signed x-amz-content-sha256 that
        // it then compares with the body's hash: a declared value alone would let a body be swapped.
        builder.Append(payloadHash);
        return builder.ToString();
    }

    // Non-S3 services: the path as sent (already percent-encoded by the client) is encoded once more.
    private static string CanonicalPath(string rawPath) =>
        string.IsNullOrEmpty(rawPath) ? "/" : string.Join('/', rawPath.Split('/').Select(s => Encode(s)));

    /// <summary>
    /// The query's pairs, sorted: each name and value decoded and encoded again as SigV4 says, or
    /// with <paramref name="asSent"/> kept as they came on the wire (how botocore and curl sign a
    /// query already in the URL).
    /// </summary>
    private static string CanonicalQuery(string rawQuery, bool asSent)
    {
        if (string.IsNullOrEmpty(rawQuery))
        {
            return string.Empty;
        }

        var pairs = rawQuery.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries)
            .Select(p =>
            {
                var eq = p.IndexOf('=', StringComparison.Ordinal);
                var (key, value) = (eq < 0 ? p : p[..eq], eq < 0 ? string.Empty : p[(eq + 1)..]);
                return asSent ? (Key: key, Value: value)
                    : (Key: Encode(Uri.UnescapeDataString(key.Replace('+', ' '))), Value: Encode(Uri.UnescapeDataString(value.Replace('+', ' '))));
            })
            .OrderBy(p => p.Key, StringComparer.Ordinal)
            .ThenBy(p => p.Value, StringComparer.Ordinal);
        return string.Join('&', pairs.Select(p => p.Key + "=" + p.Value));
    }

    /// <summary>RFC 3986 encoding as SigV4 wants it: unreserved characters stay, everything else is %XX (upper case).</summary>
    private static string Encode(string value)
    {
        var builder = new StringBuilder(value.Length);
        foreach (var b in Encoding.UTF8.GetBytes(value))
        {
            var c = (char)b;
            if (char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '~')
            {
                builder.Append(c);
            }
            else
            {
                builder.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }

        return builder.ToString();
    }

    private static string CollapseSpaces(string value) =>
        string.Join(' ', value.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries));

    private static byte[] Hmac(byte[] key, string data) => HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(data));

    public static string Hex(byte[] bytes) => Convert.ToHexStringLower(bytes);
}
