using System.Security.Cryptography;

namespace Trellis.Registry;

/// <summary>
/// API access keys. The first admin key lives in the data folder's <c>credentials</c> file, an AWS
/// shared-credentials file with profile <c>trellis</c>, so boto3 and the AWS CLI can use it as is.
/// </summary>
public sealed class AccessKeys
{
    public const string Profile = "trellis";
    private readonly Dictionary<string, string> _secrets = new(StringComparer.Ordinal);

    private AccessKeys(string adminKeyId, string adminSecret)
    {
        AdminAccessKeyId = adminKeyId;
        _secrets[adminKeyId] = adminSecret;
    }

    public string AdminAccessKeyId { get; }

    public string? SecretFor(string accessKeyId) => _secrets.TryGetValue(accessKeyId, out var secret) ? secret : null;

    /// <summary>Reads the credentials file, creating it with a new admin key on first start.</summary>
    public static AccessKeys LoadOrCreate(string path)
    {
        if (File.Exists(path))
        {
            return ReadProfile(path, Profile) is var (id, secret)
                ? new AccessKeys(id, secret)
                : throw new InvalidOperationException($"{path} has no [{Profile}] profile with aws_access_key_id and aws_secret_access_key. Fix the file or delete it to have a new admin key made.");
        }

        const string Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        var newId = "TRLS" + RandomNumberGenerator.GetString(Alphabet, 16);
        var newSecret = Convert.ToBase64String(RandomNumberGenerator.GetBytes(30));
        Trellis.Device.OwnerOnlyFile.Write(path, $"""
            # Trellis admin API key. Use it with boto3 or the AWS CLI:
            #   AWS_SHARED_CREDENTIALS_FILE={path} AWS_PROFILE={Profile} aws iot list-things --endpoint-url http://127.0.0.1:8080
            [{Profile}]
            aws_access_key_id = {newId}
            aws_secret_access_key = {newSecret}

            """);
        return new AccessKeys(newId, newSecret);
    }

    /// <summary>The key id and secret of one profile of an AWS shared-credentials file, or null.</summary>
    public static (string AccessKeyId, string Secret)? ReadProfile(string path, string profile)
    {
        string? section = null, id = null, secret = null;
        foreach (var raw in File.ReadLines(path))
        {
            var line = raw.Trim();
            if (line.StartsWith('[') && line.EndsWith(']'))
            {
                if (section == profile && id is not null && secret is not null)
                {
                    return (id, secret);
                }

                section = line[1..^1].Trim();
                id = secret = null;
                continue;
            }

            var eq = line.IndexOf('=', StringComparison.Ordinal);
            if (section != profile || eq <= 0)
            {
                continue;
            }

            var (key, value) = (line[..eq].Trim(), line[(eq + 1)..].Trim());
            if (key == "aws_access_key_id")
            {
                id = value;
            }
            else if (key == "aws_secret_access_key")
            {
                secret = value;
            }
        }

        return section == profile && id is not null && secret is not null ? (id, secret) : null;
    }
}
