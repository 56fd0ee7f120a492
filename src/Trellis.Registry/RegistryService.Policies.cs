using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Data.Sqlite;
using Trellis.Core.Errors;
using Trellis.Security.Policies;

namespace Trellis.Registry;

public sealed partial class RegistryService
{
    /// <summary>AWS IoT keeps at most five versions of a policy.</summary>
    private const int MaxPolicyVersions = 5;

    [GeneratedRegex("^[\\w+=,.@-]{1,128}$")]
    private static partial Regex PolicyNamePattern();

    public Result<PolicyVersionRecord> CreatePolicy(string name, string? document)
    {
        if (!PolicyNamePattern().IsMatch(name))
        {
            return new TrellisError.InvalidRequest($"Policy name '{name}' is invalid: 1-128 characters from letters, digits and + = , . @ _ -");
        }

        if (ParseNewDocument(document) is { Error: { } error })
        {
            return error;
        }

        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadPolicy(connection, name) is not null)
            {
                return new TrellisError.AlreadyExists($"Policy {name} already exists.", name, Options.Arn("policy/" + name));
            }

            var now = NowMs;
            using var transaction = connection.BeginTransaction();
            using (var insert = Command(connection,
                "INSERT INTO policies(name, default_version, next_version, created_ms, updated_ms) VALUES ($n, 1, 2, $ts, $ts); INSERT INTO policy_versions(policy_name, version, document, created_ms) VALUES ($n, 1, $d, $ts);",
                ("$n", name), ("$d", document), ("$ts", now)))
            {
                insert.Transaction = transaction;
                insert.ExecuteNonQuery();
            }

            transaction.Commit();
            _policies[name] = ParseDocument(document).Value!.Named(name);
            Changed();
            return new PolicyVersionRecord(name, "1", document!, true, now);
        }
    }

    public Result<PolicyRecord> GetPolicy(string name)
    {
        using var connection = _db.Open();
        return ReadPolicy(connection, name) is { } policy ? policy : NotFoundPolicy(name);
    }

    public Page<PolicyRecord> ListPolicies(string? marker, int? pageSize, bool ascending)
    {
        using var connection = _db.Open();
        var size = PageSize(pageSize);
        var after = DecodeToken(marker);
        var sql = "SELECT p.name, p.default_version, v.document, p.created_ms, p.updated_ms FROM policies p JOIN policy_versions v ON v.policy_name = p.name AND v.version = p.default_version WHERE "
            + (ascending ? "($after IS NULL OR p.name > $after) ORDER BY p.name" : "($after IS NULL OR p.name < $after) ORDER BY p.name DESC") + " LIMIT $limit";
        using var command = Command(connection, sql, ("$after", after), ("$limit", size + 1));
        using var reader = command.ExecuteReader();
        var items = new List<PolicyRecord>();
        while (reader.Read())
        {
            items.Add(MapPolicy(reader));
        }

        return ToPage(items, size, p => p.Name);
    }

    public TrellisError? DeletePolicy(string name)
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadPolicy(connection, name) is null)
            {
                return NotFoundPolicy(name);
            }

            var targets = _targetPolicies.Where(t => t.Value.Contains(name)).Select(t => t.Key).ToList();
            if (targets.Count > 0)
            {
                return new TrellisError.DeleteConflict($"The policy cannot be deleted as the policy is attached to one or more principals (name={name}). Detach it first.");
            }

            using (var versions = Command(connection, "SELECT COUNT(*) FROM policy_versions WHERE policy_name = $n", ("$n", name)))
            {
                if ((long)versions.ExecuteScalar()! > 1)
                {
                    return new TrellisError.DeleteConflict($"Cannot delete the policy {name} because it has one or more versions other than the default version. Delete them first (DeletePolicyVersion).");
                }
            }

            using var delete = Command(connection, "DELETE FROM policies WHERE name = $n", ("$n", name));
            delete.ExecuteNonQuery();
            _policies.Remove(name);
            Changed();
            return null;
        }
    }

    public Result<PolicyVersionRecord> CreatePolicyVersion(string name, string? document, bool setAsDefault)
    {
        if (ParseNewDocument(document) is { Error: { } error })
        {
            return error;
        }

        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadPolicy(connection, name) is null)
            {
                return NotFoundPolicy(name);
            }

            using (var count = Command(connection, "SELECT COUNT(*) FROM policy_versions WHERE policy_name = $n", ("$n", name)))
            {
                if ((long)count.ExecuteScalar()! >= MaxPolicyVersions)
                {
                    return new TrellisError.VersionsLimitExceeded($"The policy {name} already has the maximum number of versions ({MaxPolicyVersions}); delete one first.");
                }
            }

            var now = NowMs;
            long version;
            using var transaction = connection.BeginTransaction();
            using (var next = Command(connection, "SELECT next_version FROM policies WHERE name = $n", ("$n", name)))
            {
                next.Transaction = transaction;
                version = (long)next.ExecuteScalar()!;
            }

            using (var insert = Command(connection,
                "INSERT INTO policy_versions(policy_name, version, document, created_ms) VALUES ($n, $v, $d, $ts); UPDATE policies SET next_version = $v + 1, updated_ms = $ts, default_version = CASE WHEN $def THEN $v ELSE default_version END WHERE name = $n;",
                ("$n", name), ("$v", version), ("$d", document), ("$ts", now), ("$def", setAsDefault)))
            {
                insert.Transaction = transaction;
                insert.ExecuteNonQuery();
            }

            transaction.Commit();
            if (setAsDefault)
            {
                _policies[name] = ParseDocument(document).Value!.Named(name);
                Changed();
            }

            return new PolicyVersionRecord(name, version.ToString(CultureInfo.InvariantCulture), document!, setAsDefault, now);
        }
    }

    public TrellisError? SetDefaultPolicyVersion(string name, string versionId)
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadVersion(connection, name, versionId) is not { } version)
            {
                return new TrellisError.NotFound($"Policy {name} has no version {versionId}.");
            }

            using var update = Command(connection, "UPDATE policies SET default_version = $v, updated_ms = $ts WHERE name = $n", ("$v", long.Parse(version.VersionId, CultureInfo.InvariantCulture)), ("$ts", NowMs), ("$n", name));
            update.ExecuteNonQuery();
            _policies[name] = ParseDocument(version.Document).Value!.Named(name);
            Changed();
            return null;
        }
    }

    public Result<PolicyVersionRecord> GetPolicyVersion(string name, string versionId)
    {
        using var connection = _db.Open();
        return ReadVersion(connection, name, versionId) is { } version ? version : new TrellisError.NotFound($"Policy {name} has no version {versionId}.");
    }

    public Result<List<PolicyVersionRecord>> ListPolicyVersions(string name)
    {
        using var connection = _db.Open();
        if (ReadPolicy(connection, name) is null)
        {
            return NotFoundPolicy(name);
        }

        using var command = Command(connection, "SELECT v.version, v.document, v.created_ms, p.default_version FROM policy_versions v JOIN policies p ON p.name = v.policy_name WHERE v.policy_name = $n ORDER BY v.version DESC", ("$n", name));
        using var reader = command.ExecuteReader();
        var versions = new List<PolicyVersionRecord>();
        while (reader.Read())
        {
            versions.Add(new PolicyVersionRecord(name, reader.GetInt64(0).ToString(CultureInfo.InvariantCulture), reader.GetString(1), reader.GetInt64(0) == reader.GetInt64(3), reader.GetInt64(2)));
        }

        return versions;
    }

    public TrellisError? DeletePolicyVersion(string name, string versionId)
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadVersion(connection, name, versionId) is not { } version)
            {
                return new TrellisError.NotFound($"Policy {name} has no version {versionId}.");
            }

            if (version.IsDefault)
            {
                return new TrellisError.DeleteConflict($"Version {versionId} is the default version of policy {name}: set another default first, or delete the policy.");
            }

            using var delete = Command(connection, "DELETE FROM policy_versions WHERE policy_name = $n AND version = $v", ("$n", name), ("$v", long.Parse(versionId, CultureInfo.InvariantCulture)));
            delete.ExecuteNonQuery();
            return null;
        }
    }

    private static Result<PolicyDocument> ParseDocument(string? document)
    {
        if (string.IsNullOrWhiteSpace(document))
        {
            return new TrellisError.MalformedPolicy("policyDocument is required.");
        }

        if (document.Length > 2048 * 10)
        {
            return new TrellisError.MalformedPolicy("policyDocument is larger than 20 KiB.");
        }

        return PolicyDocument.TryParse(document, out var parsed, out var error) ? parsed! : new TrellisError.MalformedPolicy(error);
    }

    /// <summary>A new document (CreatePolicy, CreatePolicyVersion): parsed, and every iot: action one AWS IoT defines.</summary>
    private static Result<PolicyDocument> ParseNewDocument(string? document)
    {
        var parsed = ParseDocument(document);
        if (parsed.Value is { } valid && IotActionNames.FirstUnknown(valid) is { } unknown)
        {
            return new TrellisError.MalformedPolicy($"Action {unknown} is not an AWS IoT action (did you mean {IotActionNames.Closest(unknown)}?). Actions of other services, such as greengrass:*, are accepted as they are.");
        }

        return parsed;
    }

    private PolicyRecord? ReadPolicy(SqliteConnection connection, string name)
    {
        using var command = Command(connection, "SELECT p.name, p.default_version, v.document, p.created_ms, p.updated_ms FROM policies p JOIN policy_versions v ON v.policy_name = p.name AND v.version = p.default_version WHERE p.name = $n", ("$n", name));
        using var reader = command.ExecuteReader();
        return reader.Read() ? MapPolicy(reader) : null;
    }

    private static PolicyVersionRecord? ReadVersion(SqliteConnection connection, string name, string versionId)
    {
        if (!long.TryParse(versionId, NumberStyles.None, CultureInfo.InvariantCulture, out var version))
        {
            return null;
        }

        using var command = Command(connection, "SELECT v.document, v.created_ms, p.default_version FROM policy_versions v JOIN policies p ON p.name = v.policy_name WHERE v.policy_name = $n AND v.version = $v", ("$n", name), ("$v", version));
        using var reader = command.ExecuteReader();
        return reader.Read() ? new PolicyVersionRecord(name, versionId, reader.GetString(0), reader.GetInt64(2) == version, reader.GetInt64(1)) : null;
    }

    private PolicyRecord MapPolicy(SqliteDataReader reader) => new(
        reader.GetString(0),
        Options.Arn("policy/" + reader.GetString(0)),
        reader.GetInt64(1).ToString(CultureInfo.InvariantCulture),
        reader.GetString(2),
        reader.GetInt64(3),
        reader.GetInt64(4));

    private static TrellisError NotFoundPolicy(string name) => new TrellisError.NotFound($"Policy {name} does not exist.");
}
