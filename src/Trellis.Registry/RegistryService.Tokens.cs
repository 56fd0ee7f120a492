using System.Security.Cryptography;
using System.Text;
using Microsoft.Data.Sqlite;
using Trellis.Core.Errors;

namespace Trellis.Registry;

/// <summary>
/// Device tokens: a password for constrained devices that cannot do TLS client certificates. A
/// token is <c>{id}.{secret}</c>; only a salted HMAC-SHA256 of the 256-bit secret is stored (the
/// secret is random, so a slow password hash would add nothing but connect latency). The token's
/// ARN (<c>…:devicetoken/{id}</c>) takes policies like a certificate does, and the thing's group
/// policies apply too.
/// </summary>
public sealed partial class RegistryService
{
    /// <summary>Raised after a token was revoked or expired early (its id).</summary>
    public event Action<string>? DeviceTokenDisabled;

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (long Generation, byte[] Salt, byte[] Hash, DeviceTokenRecord Record)> _verifiedTokens = new(StringComparer.Ordinal);
    private long _tokenGeneration;

    /// <summary>
    /// Creates a token for a thing; with <paramref name="dtlsPsk"/> it is also the thing's DTLS
    /// pre-shared key on CoAP (PSK identity = the thing's name, key = the token), kept sealed so that
    /// the handshake can use it. The newest active such token of a thing is its key.
    /// </summary>
    public Result<(DeviceTokenRecord Record, string Token)> CreateDeviceToken(string thingName, long? expiresInSeconds, string? description, bool dtlsPsk = false)
    {
        if (dtlsPsk && _secrets is null)
        {
            return new TrellisError.InvalidRequest("This server keeps no sealed secrets (no secrets.key): a DTLS pre-shared key cannot be stored.");
        }

        if (expiresInSeconds is <= 0)
        {
            return new TrellisError.InvalidRequest("expiresInSeconds must be positive.");
        }

        if (description is { Length: > 256 })
        {
            return new TrellisError.InvalidRequest("description is at most 256 characters.");
        }

        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        var secret = Base64Url(RandomNumberGenerator.GetBytes(32));
        var salt = RandomNumberGenerator.GetBytes(16);
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadThing(connection, thingName) is null)
            {
                return NotFoundThing(thingName);
            }

            var now = NowMs;
            using var insert = Command(connection,
                "INSERT INTO device_tokens(id, thing_name, salt, hash, description, created_ms, expires_ms, sealed_token) VALUES ($id, $t, $s, $h, $d, $c, $e, $k)",
                ("$id", id), ("$t", thingName), ("$s", salt), ("$h", HashSecret(salt, secret)), ("$d", description), ("$c", now),
                ("$e", expiresInSeconds is { } seconds ? now + (seconds * 1000) : null),
                ("$k", dtlsPsk ? _secrets!.Seal($"{id}.{secret}", "devicetoken/" + id) : null));
            insert.ExecuteNonQuery();
            return (ReadDeviceToken(connection, id)!, $"{id}.{secret}");
        }
    }

    public Result<DeviceTokenRecord> DescribeDeviceToken(string id)
    {
        using var connection = _db.Open();
        return ReadDeviceToken(connection, id) is { } token ? token : NotFoundToken(id);
    }

    /// <summary>A thing's tokens (metadata only), oldest first.</summary>
    public Result<List<DeviceTokenRecord>> ListDeviceTokens(string thingName)
    {
        using var connection = _db.Open();
        if (ReadThing(connection, thingName) is null)
        {
            return NotFoundThing(thingName);
        }

        using var command = Command(connection, "SELECT id, thing_name, description, created_ms, expires_ms, revoked_ms, sealed_token IS NOT NULL FROM device_tokens WHERE thing_name = $t ORDER BY created_ms, id", ("$t", thingName));
        return ReadAll(command, MapDeviceToken);
    }

    /// <summary>Revokes a token for good; live connections that used it are dropped.</summary>
    public TrellisError? RevokeDeviceToken(string id) => DisableToken(id, "UPDATE device_tokens SET revoked_ms = $now WHERE id = $id AND revoked_ms IS NULL");

    /// <summary>Makes a token expire now; live connections that used it are dropped.</summary>
    public TrellisError? ExpireDeviceToken(string id) =>
        DisableToken(id, "UPDATE device_tokens SET expires_ms = $now WHERE id = $id AND (expires_ms IS NULL OR expires_ms > $now)");

    /// <summary>
    /// Checks a thing name and token as sent in CONNECT. Returns the token when it belongs to that
    /// thing and is active; null otherwise (the caller says only "bad user name or password").
    /// </summary>
    public DeviceTokenRecord? VerifyDeviceToken(string thingName, ReadOnlySpan<byte> password)
    {
        var text = Encoding.UTF8.GetString(password);
        var dot = text.IndexOf('.', StringComparison.Ordinal);
        if (dot <= 0 || dot == text.Length - 1)
        {
            return null;
        }

        var id = text[..dot];

        // Tokens verified before are kept in memory (salt, hash, record) until any token is revoked
        // or expired early, or the registry changes (a deleted thing deletes its tokens): connects
        // then cost no database read. Only verified tokens are kept, so guesses cannot fill it.
        var generation = TokenGeneration;
        if (!_verifiedTokens.TryGetValue(id, out var known) || known.Generation != generation)
        {
            using var connection = _db.Open();
            using var command = Command(connection, "SELECT salt, hash FROM device_tokens WHERE id = $id", ("$id", id));
            byte[] salt, hash;
            using (var reader = command.ExecuteReader())
            {
                if (!reader.Read())
                {
                    return null;
                }

                salt = (byte[])reader[0];
                hash = (byte[])reader[1];
            }

            if (!CryptographicOperations.FixedTimeEquals(hash, HashSecret(salt, text[(dot + 1)..])) || ReadDeviceToken(connection, id) is not { } record)
            {
                return null;
            }

            known = (generation, salt, hash, record);
            _verifiedTokens[id] = known;
        }
        else if (!CryptographicOperations.FixedTimeEquals(known.Hash, HashSecret(known.Salt, text[(dot + 1)..])))
        {
            return null;
        }

        var token = known.Record;
        return token.ThingName == thingName && token.StatusAt(NowMs) == "ACTIVE" ? token : null;
    }

    /// <summary>
    /// The DTLS pre-shared key of a thing (the PSK identity is its name): the newest of its active
    /// tokens created as a PSK, or null. The key is the token itself, so a device that completes the
    /// handshake with it is then checked exactly as a device that sent the token in CONNECT.
    /// </summary>
    public (DeviceTokenRecord Record, string Token)? DtlsPskOf(string thingName)
    {
        if (_secrets is null)
        {
            return null;
        }

        // One read: the record's columns (as ReadDeviceToken reads them) and the sealed token after them.
        using var connection = _db.Open();
        using var command = Command(connection,
            "SELECT id, thing_name, description, created_ms, expires_ms, revoked_ms, sealed_token IS NOT NULL, sealed_token FROM device_tokens "
            + "WHERE thing_name = $t AND sealed_token IS NOT NULL AND revoked_ms IS NULL AND (expires_ms IS NULL OR expires_ms > $now) ORDER BY created_ms DESC, id DESC LIMIT 1",
            ("$t", thingName), ("$now", NowMs));
        using var reader = command.ExecuteReader();
        if (!reader.Read())
        {
            return null;
        }

        var record = MapDeviceToken(reader);
        return (record, _secrets.Open(reader.GetString(7), "devicetoken/" + record.Id));
    }

    /// <summary>Changes when a token is disabled or anything in the registry changes: cached verifications older than it are read again.</summary>
    private long TokenGeneration => Volatile.Read(ref _tokenGeneration) + PolicyGeneration;

    /// <summary>The token id in a device-token ARN (arn:aws:iot:region:account:devicetoken/ID), or null.</summary>
    public static string? DeviceTokenIdFromArn(string arn)
    {
        const string marker = ":devicetoken/";
        var at = arn.IndexOf(marker, StringComparison.Ordinal);
        return arn.StartsWith("arn:", StringComparison.Ordinal) && at > 0 ? arn[(at + marker.Length)..] : null;
    }

    private TrellisError? DisableToken(string id, string sql)
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadDeviceToken(connection, id) is null)
            {
                return NotFoundToken(id);
            }

            using var update = Command(connection, sql, ("$now", NowMs), ("$id", id));
            update.ExecuteNonQuery();
            Interlocked.Increment(ref _tokenGeneration);
            _verifiedTokens.Clear();
        }

        DeviceTokenDisabled?.Invoke(id);
        return null;
    }

    private DeviceTokenRecord? ReadDeviceToken(SqliteConnection connection, string id)
    {
        using var command = Command(connection, "SELECT id, thing_name, description, created_ms, expires_ms, revoked_ms, sealed_token IS NOT NULL FROM device_tokens WHERE id = $id", ("$id", id));
        return ReadAll(command, MapDeviceToken).FirstOrDefault();
    }

    private DeviceTokenRecord MapDeviceToken(SqliteDataReader r) => new(
        r.GetString(0),
        Options.Arn("devicetoken/" + r.GetString(0)),
        r.GetString(1),
        r.IsDBNull(2) ? null : r.GetString(2),
        r.GetInt64(3),
        r.IsDBNull(4) ? null : r.GetInt64(4),
        r.IsDBNull(5) ? null : r.GetInt64(5),
        r.GetBoolean(6));

    private static byte[] HashSecret(byte[] salt, string secret) => HMACSHA256.HashData(salt, Encoding.UTF8.GetBytes(secret));

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static TrellisError NotFoundToken(string id) => new TrellisError.NotFound($"Device token {id} cannot be found.");
}
