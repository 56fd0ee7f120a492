using System.Collections.Concurrent;
using System.Security.Cryptography;
using Trellis.Core.Errors;
using Trellis.Storage;

namespace Trellis.Registry;

/// <summary>Roles of API access keys.</summary>
public static class ApiRoles
{
    /// <summary>Everything, including users (and, later, CAs).</summary>
    public const string Admin = "admin";

    /// <summary>Everything but users and CAs.</summary>
    public const string Operator = "operator";

    /// <summary>Read-only.</summary>
    public const string Viewer = "viewer";

    public static bool IsValid(string role) => role is Admin or Operator or Viewer;
}

/// <summary>An API user: an access key with a role.</summary>
public sealed record ApiUser(string AccessKeyId, string Name, string Role, long CreatedMs);

/// <summary>
/// Access keys for people and services, each with a role. SigV4 needs the secret itself to check a
/// signature, so secrets are kept, sealed with the data folder's <c>secrets.key</c>
/// (<see cref="Trellis.Security.SecretBox"/>): the registry database alone does not give them away.
/// They are returned once, at creation. The data folder's admin key is always an admin.
/// </summary>
public sealed class ApiUsers
{
    private readonly SqliteDatabase db;
    private readonly AccessKeys adminKey;
    private readonly TimeProvider time;
    private readonly Trellis.Security.SecretBox box;

    public ApiUsers(SqliteDatabase db, AccessKeys adminKey, TimeProvider time, Trellis.Security.SecretBox box)
    {
        this.db = db;
        this.adminKey = adminKey;
        this.time = time;
        this.box = box;
        SealPlainSecrets();
    }

    /// <summary>
    /// At start: checks that every sealed secret opens with this folder's key (else the server
    /// stops, naming the key file to restore), and seals the secrets that an earlier version stored
    /// as plain text.
    /// </summary>
    private void SealPlainSecrets()
    {
        using var connection = db.Open();
        var plain = new List<(string Id, string Secret)>();
        using (var select = connection.CreateCommand())
        {
            select.CommandText = "SELECT access_key_id, secret FROM api_users";
            using var reader = select.ExecuteReader();
            while (reader.Read())
            {
                var (id, stored) = (reader.GetString(0), reader.GetString(1));
                if (!Trellis.Security.SecretBox.IsSealed(stored))
                {
                    plain.Add((id, stored));
                    continue;
                }

                try
                {
                    box.Open(stored, id);
                }
                catch (CryptographicException e)
                {
                    throw new InvalidOperationException($"API user {id}'s secret does not open with the data folder's secrets.key: restore the secrets.key that was backed up with this data folder (a new one cannot read the keys sealed under the old one), or delete the API users and create them again.", e);
                }
            }
        }

        foreach (var (id, secret) in plain)
        {
            using var update = connection.CreateCommand();
            update.CommandText = "UPDATE api_users SET secret = $s WHERE access_key_id = $id";
            update.Parameters.AddWithValue("$s", box.Seal(secret, id));
            update.Parameters.AddWithValue("$id", id);
            update.ExecuteNonQuery();
        }
    }

    private readonly ConcurrentDictionary<string, (string Secret, ApiUser User)> _cache = new(StringComparer.Ordinal);

    /// <summary>The secret of a key (the admin key's or a user's), for SigV4 verification.</summary>
    public string? SecretFor(string accessKeyId) => adminKey.SecretFor(accessKeyId) ?? Find(accessKeyId)?.Secret;

    /// <summary>True when the pair is a known key (the admin's or a user's) and its secret, compared in constant time.</summary>
    public bool Verify(string accessKeyId, byte[]? secret) =>
        secret is not null && SecretFor(accessKeyId) is { } expected
        && CryptographicOperations.FixedTimeEquals(System.Text.Encoding.UTF8.GetBytes(expected), secret);

    /// <summary>The role of a key; null for an unknown key.</summary>
    public string? RoleOf(string accessKeyId) =>
        accessKeyId == adminKey.AdminAccessKeyId ? ApiRoles.Admin : Find(accessKeyId)?.User.Role;

    public Result<(ApiUser User, string Secret)> Create(string? name, string? role)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Length > 128)
        {
            return new TrellisError.InvalidRequest("name is required (at most 128 characters).");
        }

        if (role is null || !ApiRoles.IsValid(role))
        {
            return new TrellisError.InvalidRequest($"role must be {ApiRoles.Admin}, {ApiRoles.Operator} or {ApiRoles.Viewer}.");
        }

        var (id, secret) = NewKey();
        var user = new ApiUser(id, name, role, time.GetUtcNow().ToUnixTimeMilliseconds());
        using var connection = db.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "INSERT INTO api_users(access_key_id, secret, name, role, created_ms) SELECT $id, $s, $n, $r, $c WHERE NOT EXISTS (SELECT 1 FROM api_users WHERE name = $n)";
        command.Parameters.AddWithValue("$id", id);
        command.Parameters.AddWithValue("$s", box.Seal(secret, id));
        command.Parameters.AddWithValue("$n", name);
        command.Parameters.AddWithValue("$r", role);
        command.Parameters.AddWithValue("$c", user.CreatedMs);
        if (command.ExecuteNonQuery() == 0)
        {
            return new TrellisError.AlreadyExists($"An API user named '{name}' already exists.");
        }

        return (user, secret);
    }

    public List<ApiUser> List()
    {
        using var connection = db.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT access_key_id, name, role, created_ms FROM api_users ORDER BY name";
        using var reader = command.ExecuteReader();
        var users = new List<ApiUser>();
        while (reader.Read())
        {
            users.Add(new ApiUser(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetInt64(3)));
        }

        return users;
    }

    /// <summary>A key stopped working (its user was deleted, or the key rotated): connections made with it are to be dropped.</summary>
    public event Action<string>? KeyRevoked;

    /// <summary>Deletes a user; its key stops working at once.</summary>
    public TrellisError? Delete(string accessKeyId)
    {
        using var connection = db.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "DELETE FROM api_users WHERE access_key_id = $id";
        command.Parameters.AddWithValue("$id", accessKeyId);
        var deleted = command.ExecuteNonQuery() > 0;
        _cache.TryRemove(accessKeyId, out _);
        if (deleted)
        {
            KeyRevoked?.Invoke(accessKeyId);
        }

        return deleted ? null : new TrellisError.NotFound($"API user with access key {accessKeyId} cannot be found.");
    }

    /// <summary>
    /// Gives a user a new access key and secret, keeping its name, role and creation date; the old
    /// key stops working at once (requests signed with it get UnrecognizedClientException, its MQTT
    /// connections are dropped). The data folder's own admin key lives in its credentials file and
    /// is not rotated here.
    /// </summary>
    public Result<(ApiUser User, string Secret)> Rotate(string accessKeyId)
    {
        if (accessKeyId == adminKey.AdminAccessKeyId)
        {
            return new TrellisError.InvalidRequest($"{accessKeyId} is the data folder's own admin key (data/credentials), not an API user: create an admin user and use it instead, then keep the credentials file for recovery.");
        }

        var (id, secret) = NewKey();
        using var connection = db.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "UPDATE api_users SET access_key_id = $new, secret = $s WHERE access_key_id = $old RETURNING name, role, created_ms";
        command.Parameters.AddWithValue("$new", id);
        command.Parameters.AddWithValue("$s", box.Seal(secret, id));
        command.Parameters.AddWithValue("$old", accessKeyId);
        ApiUser user;
        using (var reader = command.ExecuteReader())
        {
            if (!reader.Read())
            {
                return new TrellisError.NotFound($"API user with access key {accessKeyId} cannot be found.");
            }

            user = new ApiUser(id, reader.GetString(0), reader.GetString(1), reader.GetInt64(2));
        }

        _cache.TryRemove(accessKeyId, out _);
        KeyRevoked?.Invoke(accessKeyId);
        return (user, secret);
    }

    private static (string Id, string Secret) NewKey()
    {
        const string Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        return ("TRLS" + RandomNumberGenerator.GetString(Alphabet, 16), Convert.ToBase64String(RandomNumberGenerator.GetBytes(30)));
    }

    private (string Secret, ApiUser User)? Find(string accessKeyId)
    {
        if (_cache.TryGetValue(accessKeyId, out var cached))
        {
            return cached;
        }

        // Every MQTT connect with a user name asks here first (a device token's user name is its
        // thing's name): only names in the form of the keys Create makes can be one.
        if (accessKeyId.Length != 20 || !accessKeyId.StartsWith("TRLS", StringComparison.Ordinal))
        {
            return null;
        }

        using var connection = db.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT secret, name, role, created_ms FROM api_users WHERE access_key_id = $id";
        command.Parameters.AddWithValue("$id", accessKeyId);
        using var reader = command.ExecuteReader();
        if (!reader.Read())
        {
            return null;
        }

        var found = (box.Open(reader.GetString(0), accessKeyId), new ApiUser(accessKeyId, reader.GetString(1), reader.GetString(2), reader.GetInt64(3)));
        _cache[accessKeyId] = found;
        return found;
    }
}
