using System.Security.Cryptography;
using System.Text;

namespace Trellis.Security;

/// <summary>
/// Seals secrets that the server must be able to read back (API users' SigV4 secrets: the
/// signature needs the secret itself, so a hash cannot stand in for it) with AES-256-GCM under a
/// key kept in its own file (<c>secrets.key</c>, mode 0600, beside <c>credentials</c>). A copy of
/// the database alone is then not a copy of the keys. Each sealed value is bound to its owner's
/// id (associated data), so a sealed secret cannot be moved to another row.
/// </summary>
public sealed class SecretBox
{
    private const string Prefix = "sealed:v1:";
    private readonly byte[] _key;

    private SecretBox(byte[] key) => _key = key;

    /// <summary>Reads the key file, creating it (0600) with a new random key on first start.</summary>
    public static SecretBox LoadOrCreate(string path)
    {
        if (File.Exists(path))
        {
            var existing = File.ReadAllBytes(path);
            return existing.Length == 32
                ? new SecretBox(existing)
                : throw new InvalidOperationException($"{path} must hold 32 bytes (an AES-256 key), not {existing.Length}. Restore it from the backup taken with the data folder: without it the API users' keys cannot be read.");
        }

        var key = RandomNumberGenerator.GetBytes(32);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var file = new FileStream(path, options))
        {
            file.Write(key);
            file.Flush(flushToDisk: true);
        }

        return new SecretBox(key);
    }

    public static bool IsSealed(string value) => value.StartsWith(Prefix, StringComparison.Ordinal);

    public string Seal(string secret, string owner)
    {
        var plain = Encoding.UTF8.GetBytes(secret);
        var sealedBytes = new byte[12 + plain.Length + 16];
        var nonce = sealedBytes.AsSpan(0, 12);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(_key, 16);
        aes.Encrypt(nonce, plain, sealedBytes.AsSpan(12, plain.Length), sealedBytes.AsSpan(12 + plain.Length), Encoding.UTF8.GetBytes(owner));
        return Prefix + Convert.ToBase64String(sealedBytes);
    }

    /// <summary>The secret, or an exception naming the owner when the value was sealed under another key or altered.</summary>
    public string Open(string value, string owner)
    {
        if (!IsSealed(value))
        {
            throw new CryptographicException($"the stored secret of {owner} is not sealed");
        }

        var sealedBytes = Convert.FromBase64String(value[Prefix.Length..]);
        var plain = new byte[sealedBytes.Length - 28];
        using var aes = new AesGcm(_key, 16);
        try
        {
            aes.Decrypt(sealedBytes.AsSpan(0, 12), sealedBytes.AsSpan(12, plain.Length), sealedBytes.AsSpan(12 + plain.Length), plain, Encoding.UTF8.GetBytes(owner));
        }
        catch (AuthenticationTagMismatchException e)
        {
            throw new CryptographicException($"the stored secret of {owner} does not open with this data folder's secrets.key (another folder's key file, or the database was altered)", e);
        }

        return Encoding.UTF8.GetString(plain);
    }
}
