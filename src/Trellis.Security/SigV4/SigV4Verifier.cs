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

    public SigV4Result Verify(SigV4Request request, IReadOnlyCollection<string> serviceNames)
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

        string? credential = null, signedHeaders = null, signature = null;
        foreach (var part in authorization[(Algorithm.Length + 1)..].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
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

        var secret = secretForAccessKey(accessKey);
        if (secret is null)
        {
            return SigV4Result.Fail("UnrecognizedClientException", $"The access key '{accessKey}' is not known to this server.");
        }

        var expected = Signature(request, signedHeaders, secret, amzDate, region, service);
        if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(expected), Encoding.ASCII.GetBytes(signature)))
        {
            return SigV4Result.Fail("InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. Check your secret access key and signing method.");
        }

        return SigV4Result.Ok(accessKey);
    }

    /// <summary>The SigV4 signature of a request (shared with <see cref="SigV4Signer"/>).</summary>
    internal static string Signature(SigV4Request request, string signedHeaders, string secret, string amzDate, string region, string service)
    {
        var date = amzDate[..8];
        var canonical = CanonicalRequest(request, signedHeaders);
        var stringToSign = $"AWS4-HMAC-SHA256\n{amzDate}\n{date}/{region}/{service}/aws4_request\n{Hex(SHA256.HashData(Encoding.UTF8.GetBytes(canonical)))}";
        var key = Hmac(Encoding.UTF8.GetBytes("AWS4" + secret), date);
        key = Hmac(key, region);
        key = Hmac(key, service);
        key = Hmac(key, "aws4_request");
        return Hex(Hmac(key, stringToSign));
    }

    private static string CanonicalRequest(SigV4Request request, string signedHeaders)
    {
        var builder = new StringBuilder();
        builder.Append(request.Method).Append('\n');
        builder.Append(CanonicalPath(request.RawPath)).Append('\n');
        builder.Append(CanonicalQuery(request.RawQuery)).Append('\n');
        foreach (var name in signedHeaders.Split(';'))
        {
            request.Headers.TryGetValue(name, out var value);
            builder.Append(name).Append(':').Append(CollapseSpaces(value ?? string.Empty)).Append('\n');
        }

        builder.Append('\n').Append(signedHeaders).Append('\n');
        // Always the hash of the body as received: a declared x-amz-content-sha256 is only a signed
        // header, and trusting it would let a body be swapped under a valid signature.
        builder.Append(Hex(SHA256.HashData(request.Body.Span)));
        return builder.ToString();
    }

    // Non-S3 services: the path as sent (already percent-encoded by the client) is encoded once more.
    private static string CanonicalPath(string rawPath) =>
        string.IsNullOrEmpty(rawPath) ? "/" : string.Join('/', rawPath.Split('/').Select(s => Encode(s)));

    private static string CanonicalQuery(string rawQuery)
    {
        if (string.IsNullOrEmpty(rawQuery))
        {
            return string.Empty;
        }

        var pairs = rawQuery.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries)
            .Select(p =>
            {
                var eq = p.IndexOf('=', StringComparison.Ordinal);
                var key = Uri.UnescapeDataString((eq < 0 ? p : p[..eq]).Replace('+', ' '));
                var value = eq < 0 ? string.Empty : Uri.UnescapeDataString(p[(eq + 1)..].Replace('+', ' '));
                return (Key: Encode(key), Value: Encode(value));
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

    private static string Hex(byte[] bytes) => Convert.ToHexStringLower(bytes);
}
