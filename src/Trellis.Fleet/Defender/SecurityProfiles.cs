using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Trellis.Core.Errors;
using Trellis.Registry;
using Trellis.Storage;

namespace Trellis.Fleet.Defender;

/// <summary>A security profile (AWS Device Defender Detect): behaviors that say what is normal, attached to things.</summary>
public sealed record SecurityProfileDefinition(
    string Name,
    string? Description,
    IReadOnlyList<Behavior> Behaviors,
    IReadOnlyDictionary<string, AlertTarget>? AlertTargets,
    IReadOnlyList<string>? AdditionalMetricsToRetain,
    long Version,
    long CreatedMs,
    long UpdatedMs);

public sealed record AlertTarget(string AlertTargetArn, string RoleArn);

/// <summary>What an update changes; null members keep their value, the delete flags clear one.</summary>
public sealed record SecurityProfileChange(
    string? Description,
    IReadOnlyList<Behavior>? Behaviors,
    IReadOnlyDictionary<string, AlertTarget>? AlertTargets,
    IReadOnlyList<string>? AdditionalMetricsToRetain,
    bool DeleteBehaviors,
    bool DeleteAlertTargets,
    bool DeleteAdditionalMetricsToRetain);

/// <summary>
/// Security profiles, their targets and violations, kept in trellis.db (<c>security_profiles</c>,
/// <c>security_profile_targets</c>, <c>defender_violations</c>, <c>defender_violation_events</c>).
/// The evaluation lives in <see cref="Defender"/>; this part is the definitions.
/// </summary>
public sealed partial class Defender
{
    /// <summary>The target that covers every registered thing.</summary>
    public string AllRegisteredThings => _arn("all/registered-things");

    /// <summary>The target that covers every client id that is not a registered thing.</summary>
    public string AllUnregisteredThings => _arn("all/unregistered-things");

    public string ProfileArn(string name) => _arn("securityprofile/" + name);

    [GeneratedRegex("^[a-zA-Z0-9:_-]{1,128}$")]
    private static partial Regex NamePattern();

    public Result<SecurityProfileDefinition> CreateProfile(SecurityProfileDefinition profile)
    {
        ArgumentNullException.ThrowIfNull(profile);
        if (!NamePattern().IsMatch(profile.Name))
        {
            return new TrellisError.InvalidRequest($"Security profile name '{profile.Name}' is invalid: use 1-128 characters from a-z A-Z 0-9 : _ -.");
        }

        if (CheckDefinition(profile) is { } invalid)
        {
            return invalid;
        }

        lock (_profilesLock)
        {
            using var connection = _db.Open();
            if (ReadProfile(connection, profile.Name) is not null)
            {
                return new TrellisError.AlreadyExists($"Security profile {profile.Name} already exists.", profile.Name, ProfileArn(profile.Name));
            }

            var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
            var created = profile with { Version = 1, CreatedMs = now, UpdatedMs = now };
            using var insert = SqliteCommands.Command(connection, "INSERT INTO security_profiles(name, definition, version, created_ms, updated_ms) VALUES ($n, $d, 1, $t, $t)",
                ("$n", profile.Name), ("$d", JsonSerializer.Serialize(created, DefenderJson.Default.SecurityProfileDefinition)), ("$t", now));
            insert.ExecuteNonQuery();
            ProfilesChanged();
            return created;
        }
    }

    public Result<SecurityProfileDefinition> DescribeProfile(string name)
    {
        using var connection = _db.Open();
        return ReadProfile(connection, name) is { } profile ? profile : ProfileNotFound(name);
    }

    public Result<SecurityProfileDefinition> UpdateProfile(string name, SecurityProfileChange change, long? expectedVersion)
    {
        ArgumentNullException.ThrowIfNull(change);
        lock (_profilesLock)
        {
            using var connection = _db.Open();
            if (ReadProfile(connection, name) is not { } current)
            {
                return ProfileNotFound(name);
            }

            if (expectedVersion is { } expected && expected != current.Version)
            {
                return new TrellisError.VersionConflict($"The version of security profile {name} is {current.Version}, not {expected}.");
            }

            if ((change.DeleteBehaviors && change.Behaviors is not null) || (change.DeleteAlertTargets && change.AlertTargets is not null)
                || (change.DeleteAdditionalMetricsToRetain && change.AdditionalMetricsToRetain is not null))
            {
                return new TrellisError.InvalidRequest("A delete flag and a new value for the same member cannot come together.");
            }

            var updated = current with
            {
                Description = change.Description ?? current.Description,
                Behaviors = change.DeleteBehaviors ? [] : change.Behaviors ?? current.Behaviors,
                AlertTargets = change.DeleteAlertTargets ? null : change.AlertTargets ?? current.AlertTargets,
                AdditionalMetricsToRetain = change.DeleteAdditionalMetricsToRetain ? null : change.AdditionalMetricsToRetain ?? current.AdditionalMetricsToRetain,
                Version = current.Version + 1,
                UpdatedMs = _time.GetUtcNow().ToUnixTimeMilliseconds(),
            };
            if (CheckDefinition(updated) is { } invalid)
            {
                return invalid;
            }

            using var write = SqliteCommands.Command(connection, "UPDATE security_profiles SET definition = $d, version = $v, updated_ms = $t WHERE name = $n",
                ("$d", JsonSerializer.Serialize(updated, DefenderJson.Default.SecurityProfileDefinition)), ("$v", updated.Version), ("$t", updated.UpdatedMs), ("$n", name));
            write.ExecuteNonQuery();
            ProfilesChanged();
            return updated;
        }
    }

    public TrellisError? DeleteProfile(string name, long? expectedVersion)
    {
        lock (_profilesLock)
        {
            using var connection = _db.Open();
            if (ReadProfile(connection, name) is not { } current)
            {
                return null; // AWS: deleting a profile that does not exist succeeds
            }

            if (expectedVersion is { } expected && expected != current.Version)
            {
                return new TrellisError.VersionConflict($"The version of security profile {name} is {current.Version}, not {expected}.");
            }

            using var transaction = connection.BeginTransaction();
            foreach (var sql in new[] { "DELETE FROM security_profiles WHERE name = $n", "DELETE FROM security_profile_targets WHERE profile = $n" })
            {
                using var delete = SqliteCommands.Command(connection, sql, ("$n", name));
                delete.Transaction = transaction;
                delete.ExecuteNonQuery();
            }

            transaction.Commit();
            ProfilesChanged();
            return null;
        }
    }

    public Page<string> ListProfiles(string? nextToken, int? maxResults, string? metricName)
    {
        var size = Math.Clamp(maxResults ?? 100, 1, 250);
        var after = After(nextToken);
        var names = new List<string>();
        using var connection = _db.Open();
        using var command = SqliteCommands.Command(connection, "SELECT name, definition, version, created_ms, updated_ms FROM security_profiles WHERE name > $a ORDER BY name", ("$a", after));
        using var reader = command.ExecuteReader();
        while (reader.Read() && names.Count <= size)
        {
            if (metricName is null || FromRow(reader).Behaviors.Any(b => b.Metric == metricName))
            {
                names.Add(reader.GetString(0));
            }
        }

        return PageOf(names, size, n => n);
    }

    public TrellisError? Attach(string profile, string targetArn)
    {
        lock (_profilesLock)
        {
            using var connection = _db.Open();
            if (ReadProfile(connection, profile) is null)
            {
                return ProfileNotFound(profile);
            }

            if (CheckTarget(targetArn) is { } invalid)
            {
                return invalid;
            }

            using var insert = SqliteCommands.Command(connection, "INSERT INTO security_profile_targets(profile, target_arn) VALUES ($p, $t) ON CONFLICT DO NOTHING", ("$p", profile), ("$t", targetArn));
            insert.ExecuteNonQuery();
            ProfilesChanged();
            return null;
        }
    }

    public TrellisError? Detach(string profile, string targetArn)
    {
        lock (_profilesLock)
        {
            using var connection = _db.Open();
            if (ReadProfile(connection, profile) is null)
            {
                return ProfileNotFound(profile);
            }

            using var delete = SqliteCommands.Command(connection, "DELETE FROM security_profile_targets WHERE profile = $p AND target_arn = $t", ("$p", profile), ("$t", targetArn));
            if (delete.ExecuteNonQuery() == 0)
            {
                return new TrellisError.NotFound($"Security profile {profile} is not attached to {targetArn}.");
            }

            ProfilesChanged();
            return null;
        }
    }

    public Result<Page<string>> TargetsOf(string profile, string? nextToken, int? maxResults)
    {
        using var connection = _db.Open();
        if (ReadProfile(connection, profile) is null)
        {
            return ProfileNotFound(profile);
        }

        var size = Math.Clamp(maxResults ?? 100, 1, 250);
        using var command = SqliteCommands.Command(connection, "SELECT target_arn FROM security_profile_targets WHERE profile = $p AND target_arn > $a ORDER BY target_arn LIMIT $l",
            ("$p", profile), ("$a", After(nextToken)), ("$l", size + 1));
        return PageOf(ReadStrings(command), size, t => t);
    }

    /// <summary>The profiles attached to a target (with <paramref name="recursive"/>, to a group's ancestors too), as (profile, target) pairs.</summary>
    public Page<(string Profile, string Target)> ProfilesFor(string targetArn, bool recursive, string? nextToken, int? maxResults)
    {
        var targets = new List<string> { targetArn };
        if (recursive && RegistryService.ThingGroupNameFromArn(targetArn) is { } group)
        {
            var ancestors = _registry.DescribeThingGroup(group);
            if (ancestors.IsSuccess)
            {
                targets.AddRange(ancestors.Value!.Ancestors.Select(a => _arn("thinggroup/" + a)));
            }

            targets.Add(AllRegisteredThings);
        }

        var size = Math.Clamp(maxResults ?? 100, 1, 250);
        var pairs = new List<(string, string)>();
        using var connection = _db.Open();
        foreach (var target in targets)
        {
            using var command = SqliteCommands.Command(connection, "SELECT profile FROM security_profile_targets WHERE target_arn = $t ORDER BY profile", ("$t", target));
            pairs.AddRange(ReadStrings(command).Select(p => (p, target)));
        }

        pairs.Sort((a, b) => string.CompareOrdinal(a.Item1 + "\n" + a.Item2, b.Item1 + "\n" + b.Item2));
        var after = After(nextToken);
        return PageOf([.. pairs.Where(p => string.CompareOrdinal(p.Item1 + "\n" + p.Item2, after) > 0)], size, p => p.Item1 + "\n" + p.Item2);
    }

    private static TrellisError? CheckDefinition(SecurityProfileDefinition profile)
    {
        if (profile.Behaviors.Count > 100)
        {
            return new TrellisError.InvalidRequest("A security profile holds at most 100 behaviors.");
        }

        if (DefenderMetrics.Check(profile.Behaviors) is { } invalid)
        {
            return invalid;
        }

        var unknown = profile.AdditionalMetricsToRetain?.FirstOrDefault(m => !DefenderMetrics.Known.ContainsKey(m));
        if (unknown is not null)
        {
            return new TrellisError.InvalidRequest($"additionalMetricsToRetain: unknown metric '{unknown}'.");
        }

        var badTarget = profile.AlertTargets?.Keys.FirstOrDefault(k => k != "SNS");
        return badTarget is null ? null : new TrellisError.InvalidRequest($"Alert target type '{badTarget}' is not SNS.");
    }

    private TrellisError? CheckTarget(string targetArn)
    {
        if (targetArn == AllRegisteredThings || targetArn == AllUnregisteredThings)
        {
            return null;
        }

        if (RegistryService.ThingGroupNameFromArn(targetArn) is { } group && targetArn == _arn("thinggroup/" + group))
        {
            return _registry.DescribeThingGroup(group).IsSuccess ? null : new TrellisError.NotFound($"Thing group {group} cannot be found.");
        }

        return new TrellisError.InvalidRequest($"'{targetArn}' is not a security profile target: use a thing group's ARN, {AllRegisteredThings} or {AllUnregisteredThings}.");
    }

    private static SecurityProfileDefinition? ReadProfile(Microsoft.Data.Sqlite.SqliteConnection connection, string name)
    {
        using var command = SqliteCommands.Command(connection, "SELECT name, definition, version, created_ms, updated_ms FROM security_profiles WHERE name = $n", ("$n", name));
        using var reader = command.ExecuteReader();
        return reader.Read() ? FromRow(reader) : null;
    }

    private static SecurityProfileDefinition FromRow(Microsoft.Data.Sqlite.SqliteDataReader reader) =>
        JsonSerializer.Deserialize(reader.GetString(1), DefenderJson.Default.SecurityProfileDefinition)! with
        {
            Version = reader.GetInt64(2),
            CreatedMs = reader.GetInt64(3),
            UpdatedMs = reader.GetInt64(4),
        };

    private static List<string> ReadStrings(Microsoft.Data.Sqlite.SqliteCommand command)
    {
        var values = new List<string>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            values.Add(reader.GetString(0));
        }

        return values;
    }

    private static string After(string? nextToken)
    {
        if (string.IsNullOrEmpty(nextToken))
        {
            return string.Empty;
        }

        var bytes = new byte[nextToken.Length];
        return Convert.TryFromBase64String(nextToken, bytes, out var length) ? Encoding.UTF8.GetString(bytes, 0, length) : "\uFFFF"; // not ours: an empty page
    }

    private static Page<T> PageOf<T>(List<T> items, int size, Func<T, string> key)
    {
        string? next = null;
        if (items.Count > size)
        {
            items.RemoveRange(size, items.Count - size);
            next = Convert.ToBase64String(Encoding.UTF8.GetBytes(key(items[^1])));
        }

        return new Page<T>(items, next);
    }

    private static TrellisError ProfileNotFound(string name) => new TrellisError.NotFound($"Security profile {name} cannot be found.");
}
