using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Trellis.Core.Errors;

namespace Trellis.Jobs.Firmware;

/// <summary>
/// Download links for firmware images that carry their own credential, as S3's pre-signed URLs do:
/// <c>{base}/firmware/{name}?sha256=…&amp;expires=…&amp;signature=…</c>, the signature an HMAC-SHA-256
/// of name, hash and expiry under a key of the server's (<c>data/presign.key</c>). A device needs no
/// API key to download, only the link its job gave it, until the link expires.
/// </summary>
public sealed partial class PresignedUrls(byte[] key, Func<string> baseUrl, IFirmwareStore firmware, TimeProvider time) : IJobDocumentLinks
{
    /// <summary>AWS's default and longest validity of a pre-signed URL in a job document.</summary>
    public const long DefaultExpiresInSec = 3600;

    public string For(FirmwareRecord image, long expiresInSec)
    {
        ArgumentNullException.ThrowIfNull(image);
        var expires = time.GetUtcNow().ToUnixTimeSeconds() + expiresInSec;
        return $"{baseUrl().TrimEnd('/')}/firmware/{Uri.EscapeDataString(image.Name)}?sha256={image.Sha256}&expires={expires.ToString(CultureInfo.InvariantCulture)}&signature={Sign(image.Name, image.Sha256, expires)}";
    }

    /// <summary>Checks a link's parts; the reason when it does not hold.</summary>
    public string? Refusal(string name, string? sha256, string? expires, string? signature)
    {
        if (sha256 is null || signature is null || !long.TryParse(expires, NumberStyles.None, CultureInfo.InvariantCulture, out var until))
        {
            return "The link lacks its sha256, expires or signature: ask for the job document again for a new link.";
        }

        var expected = Sign(name, sha256, until);
        if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(expected), Encoding.ASCII.GetBytes(signature)))
        {
            return "The link's signature does not match: it was changed, or made by another server.";
        }

        return time.GetUtcNow().ToUnixTimeSeconds() > until
            ? $"The link expired at {DateTimeOffset.FromUnixTimeSeconds(until):u}: ask for the job document again for a new link."
            : null;
    }

    public string Resolve(string document, long? expiresInSec)
    {
        ArgumentNullException.ThrowIfNull(document);
        if (!document.Contains("${aws:iot:s3-presigned-url:", StringComparison.Ordinal))
        {
            return document;
        }

        var seconds = Math.Clamp(expiresInSec ?? DefaultExpiresInSec, 60, DefaultExpiresInSec);
        return Placeholder().Replace(document, m => firmware.Get(m.Groups[1].Value) is { } image ? For(image, seconds) : m.Value);
    }

    public Result<string> ReadDocument(string documentSource, int maxBytes)
    {
        ArgumentNullException.ThrowIfNull(documentSource);
        var name = documentSource.TrimEnd('/');
        name = Uri.UnescapeDataString(name[(name.LastIndexOf('/') + 1)..]);
        if (firmware.Get(name) is not { } file)
        {
            return new TrellisError.NotFound($"documentSource '{documentSource}': no file '{name}' is stored. Upload the document with trellis firmware upload {name} FILE (the bucket in the URL is not used).");
        }

        if (file.Size > maxBytes)
        {
            return new TrellisError.InvalidRequest($"documentSource '{documentSource}' is {file.Size} bytes; a job document is at most {maxBytes}.");
        }

        return File.ReadAllText(firmware.PathOf(file), System.Text.Encoding.UTF8);
    }

    public string? MissingReference(string document)
    {
        ArgumentNullException.ThrowIfNull(document);
        foreach (Match m in Placeholder().Matches(document))
        {
            if (firmware.Get(m.Groups[1].Value) is null)
            {
                return m.Groups[1].Value;
            }
        }

        return null;
    }

    private string Sign(string name, string sha256, long expires) =>
        Convert.ToHexStringLower(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{name}\n{sha256}\n{expires.ToString(CultureInfo.InvariantCulture)}")));

    [GeneratedRegex(@"\$\{aws:iot:s3-presigned-url:firmware/([A-Za-z0-9._-]+)\}", RegexOptions.CultureInvariant)]
    private static partial Regex Placeholder();
}
