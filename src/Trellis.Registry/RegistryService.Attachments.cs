using Trellis.Core.Errors;

namespace Trellis.Registry;

public sealed partial class RegistryService
{
    /// <summary>AttachPolicy / AttachPrincipalPolicy: the target is a certificate ARN.</summary>
    public TrellisError? AttachPolicy(string policyName, string? target)
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadPolicy(connection, policyName) is null)
            {
                return NotFoundPolicy(policyName);
            }

            if (ValidateTarget(connection, target) is { } invalid)
            {
                return invalid;
            }

            using var insert = Command(connection, "INSERT OR IGNORE INTO policy_targets(policy_name, target) VALUES ($p, $t)", ("$p", policyName), ("$t", target));
            insert.ExecuteNonQuery();
            AttachInIndex(policyName, target!);
            Changed();
            return null;
        }
    }

    public TrellisError? DetachPolicy(string policyName, string? target)
    {
        if (string.IsNullOrEmpty(target))
        {
            return new TrellisError.InvalidRequest("target is required.");
        }

        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadPolicy(connection, policyName) is null)
            {
                return NotFoundPolicy(policyName);
            }

            using var delete = Command(connection, "DELETE FROM policy_targets WHERE policy_name = $p AND target = $t", ("$p", policyName), ("$t", target));
            delete.ExecuteNonQuery();
            if (_targetPolicies.TryGetValue(target, out var set))
            {
                set.Remove(policyName);
                if (set.Count == 0)
                {
                    _targetPolicies.Remove(target);
                }
            }

            Changed();
            return null;
        }
    }

    public Result<Page<PolicyRecord>> ListAttachedPolicies(string target, string? marker, int? pageSize)
    {
        List<string> names;
        lock (_writeLock)
        {
            names = _targetPolicies.TryGetValue(target, out var set) ? [.. set.Order(StringComparer.Ordinal)] : [];
        }

        var page = PageOfKeys(names, marker, pageSize);
        return new Page<PolicyRecord>(page.Items.Select(n => GetPolicy(n).Value).OfType<PolicyRecord>().ToList(), page.NextToken);
    }

    public Result<Page<string>> ListTargetsForPolicy(string policyName, string? marker, int? pageSize)
    {
        List<string> targets;
        lock (_writeLock)
        {
            if (!_policies.ContainsKey(policyName))
            {
                return NotFoundPolicy(policyName);
            }

            targets = [.. _targetPolicies.Where(t => t.Value.Contains(policyName)).Select(t => t.Key).Order(StringComparer.Ordinal)];
        }

        return PageOfKeys(targets, marker, pageSize);
    }

    public TrellisError? AttachThingPrincipal(string thingName, string? principal, bool exclusive)
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadThing(connection, thingName) is null)
            {
                return NotFoundThing(thingName);
            }

            if (ValidateTarget(connection, principal) is { } invalid)
            {
                return invalid;
            }

            if (exclusive)
            {
                using var others = Command(connection, "SELECT thing_name FROM thing_principals WHERE principal = $p AND thing_name <> $t", ("$p", principal), ("$t", thingName));
                if (others.ExecuteScalar() is string other)
                {
                    return new TrellisError.InvalidRequest($"Principal is already attached to thing {other}; an EXCLUSIVE_THING attachment needs it to be attached to no other thing.");
                }
            }

            using var insert = Command(connection, "INSERT OR REPLACE INTO thing_principals(thing_name, principal, exclusive) VALUES ($t, $p, $x)", ("$t", thingName), ("$p", principal), ("$x", exclusive ? 1 : 0));
            insert.ExecuteNonQuery();
            Changed();
            return null;
        }
    }

    public TrellisError? DetachThingPrincipal(string thingName, string? principal)
    {
        if (string.IsNullOrEmpty(principal))
        {
            return new TrellisError.InvalidRequest("The x-amzn-principal header is required.");
        }

        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadThing(connection, thingName) is null)
            {
                return NotFoundThing(thingName);
            }

            using var delete = Command(connection, "DELETE FROM thing_principals WHERE thing_name = $t AND principal = $p", ("$t", thingName), ("$p", principal));
            delete.ExecuteNonQuery();
            Changed();
            return null;
        }
    }

    public Result<Page<string>> ListThingPrincipals(string thingName, string? nextToken, int? maxResults)
    {
        using var connection = _db.Open();
        if (ReadThing(connection, thingName) is null)
        {
            return NotFoundThing(thingName);
        }

        var size = PageSize(maxResults);
        using var command = Command(connection, "SELECT principal FROM thing_principals WHERE thing_name = $t AND principal > $after ORDER BY principal LIMIT $limit", ("$t", thingName), ("$after", DecodeToken(nextToken) ?? string.Empty), ("$limit", size + 1));
        return ReadStringPage(command, size);
    }

    public Result<Page<string>> ListPrincipalThings(string? principal, string? nextToken, int? maxResults)
    {
        if (string.IsNullOrEmpty(principal))
        {
            return new TrellisError.InvalidRequest("The x-amzn-principal header is required.");
        }

        using var connection = _db.Open();
        var size = PageSize(maxResults);
        using var command = Command(connection, "SELECT thing_name FROM thing_principals WHERE principal = $p AND thing_name > $after ORDER BY thing_name LIMIT $limit", ("$p", principal), ("$after", DecodeToken(nextToken) ?? string.Empty), ("$limit", size + 1));
        return ReadStringPage(command, size);
    }

    /// <summary>The thing a device connects as: one attached to its principal whose name equals the client id (AWS semantics).</summary>
    public ThingRecord? ThingForConnection(string principal, string clientId)
    {
        using var connection = _db.Open();
        using var command = Command(connection, "SELECT 1 FROM thing_principals WHERE principal = $p AND thing_name = $c", ("$p", principal), ("$c", clientId));
        return command.ExecuteScalar() is null ? null : ReadThing(connection, clientId);
    }

    private static Result<Page<string>> ReadStringPage(Microsoft.Data.Sqlite.SqliteCommand command, int size) =>
        ToPage(ReadAll(command, r => r.GetString(0)), size, i => i);

    private TrellisError? ValidateTarget(Microsoft.Data.Sqlite.SqliteConnection connection, string? target)
    {
        if (string.IsNullOrEmpty(target))
        {
            return new TrellisError.InvalidRequest("A target (certificate or thing group ARN) is required.");
        }

        if (ThingGroupNameFromArn(target) is { } group)
        {
            // Normalized to this server's region and account so the policy index finds it.
            return target == ThingGroupArn(group)
                ? ReadThingGroup(connection, group) is null ? NotFoundThingGroup(group) : null
                : new TrellisError.InvalidRequest($"Target '{target}' is not a thing group of this server: use {ThingGroupArn(group)}.");
        }

        if (DeviceTokenIdFromArn(target) is { } tokenId)
        {
            return ReadDeviceToken(connection, tokenId) is { } token
                ? target == token.Arn ? null : new TrellisError.InvalidRequest($"Target '{target}' is not a device token of this server: use {token.Arn}.")
                : NotFoundToken(tokenId);
        }

        if (CertificateIdFromArn(target) is not { } id)
        {
            return new TrellisError.InvalidRequest($"Target '{target}' is not a certificate ARN (arn:aws:iot:REGION:ACCOUNT:cert/ID), a thing group ARN (…:thinggroup/NAME) or a device token ARN (…:devicetoken/ID).");
        }

        return ReadCertificate(connection, id) is null ? NotFoundCertificate(id) : null;
    }
}
