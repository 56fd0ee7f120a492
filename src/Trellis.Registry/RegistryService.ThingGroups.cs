using System.Text.Json;
using Microsoft.Data.Sqlite;
using Trellis.Core.Errors;

namespace Trellis.Registry;

public sealed partial class RegistryService
{
    /// <summary>AWS: a group hierarchy is at most 7 levels deep.</summary>
    private const int MaxGroupDepth = 7;

    /// <summary>AWS: a thing belongs to at most 10 groups.</summary>
    private const int MaxGroupsPerThing = 10;

    public Result<ThingGroupRecord> CreateThingGroup(string name, string? parent, string? description, IReadOnlyDictionary<string, string>? attributes)
    {
        if (ValidateNewGroup(name, attributes) is { } invalid)
        {
            return invalid;
        }

        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadThingGroup(connection, name) is { } existing)
            {
                if (existing.Parent == parent && existing.Description == description && SameAttributes(existing.Attributes, attributes))
                {
                    return existing;
                }

                return new TrellisError.AlreadyExists($"Thing group '{name}' already exists with a different configuration.", existing.Id, existing.Arn);
            }

            if (parent is not null)
            {
                if (ReadThingGroup(connection, parent) is not { } parentGroup)
                {
                    return NotFoundThingGroup(parent);
                }

                if (parentGroup.IsDynamic)
                {
                    return new TrellisError.InvalidRequest($"Thing group '{parent}' is dynamic: dynamic groups cannot have child groups.");
                }

                if (parentGroup.Ancestors.Count + 2 > MaxGroupDepth)
                {
                    return new TrellisError.InvalidRequest($"Thing group hierarchies are at most {MaxGroupDepth} levels deep; '{parent}' is already at level {parentGroup.Ancestors.Count + 1}.");
                }
            }

            using var insert = Command(connection,
                "INSERT INTO thing_groups(name, id, parent, description, attributes, version, created_ms) VALUES ($n, $id, $p, $d, $a, 1, $ts)",
                ("$n", name), ("$id", Guid.NewGuid().ToString()), ("$p", parent), ("$d", description),
                ("$a", JsonSerializer.Serialize(attributes ?? new Dictionary<string, string>(), RegistryJsonContext.Default.IReadOnlyDictionaryStringString)), ("$ts", NowMs));
            insert.ExecuteNonQuery();
            return ReadThingGroup(connection, name)!;
        }
    }

    public Result<ThingGroupRecord> DescribeThingGroup(string name)
    {
        using var connection = _db.Open();
        return ReadThingGroup(connection, name) is { } group ? group : NotFoundThingGroup(name);
    }

    /// <summary>Groups in name order; with <paramref name="parent"/>, its children (all descendants when <paramref name="recursive"/>).</summary>
    public Result<Page<ThingGroupRecord>> ListThingGroups(string? nextToken, int? maxResults, string? parent, string? namePrefix, bool recursive)
    {
        var size = PageSize(maxResults);
        using var connection = _db.Open();
        HashSet<string>? within = null;
        if (parent is not null)
        {
            if (ReadThingGroup(connection, parent) is null)
            {
                return NotFoundThingGroup(parent);
            }

            within = Descendants(connection, parent, recursive);
        }

        var after = DecodeToken(nextToken) ?? string.Empty;
        using var command = Command(connection, "SELECT name FROM thing_groups WHERE name > $after ORDER BY name", ("$after", after));
        var names = new List<string>();
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                var name = reader.GetString(0);
                if ((within is null || within.Contains(name)) && (namePrefix is null || name.StartsWith(namePrefix, StringComparison.Ordinal)))
                {
                    names.Add(name);
                    if (names.Count > size)
                    {
                        break;
                    }
                }
            }
        }

        var groups = names.Select(n => ReadThingGroup(connection, n)!).ToList();
        return ToPage(groups, size, g => g.Name);
    }

    public Result<long> UpdateThingGroup(string name, string? description, IReadOnlyDictionary<string, string?>? attributes, bool merge, long? expectedVersion)
    {
        if (attributes is not null && ValidateAttributes(attributes.Where(a => !string.IsNullOrEmpty(a.Value)).ToDictionary(a => a.Key, a => a.Value!)) is { } badAttributes)
        {
            return badAttributes;
        }

        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadThingGroup(connection, name) is not { } group)
            {
                return NotFoundThingGroup(name);
            }

            if (expectedVersion is { } expected && expected != group.Version)
            {
                return new TrellisError.VersionConflict($"The version for thing group {name} does not match the expected version ({group.Version} != {expected}).");
            }

            var merged = new Dictionary<string, string>(merge ? group.Attributes : new Dictionary<string, string>(), StringComparer.Ordinal);
            foreach (var (key, value) in attributes ?? new Dictionary<string, string?>())
            {
                if (string.IsNullOrEmpty(value))
                {
                    merged.Remove(key);
                }
                else
                {
                    merged[key] = value;
                }
            }

            using var update = Command(connection, "UPDATE thing_groups SET description = $d, attributes = $a, version = version + 1 WHERE name = $n",
                ("$d", description ?? group.Description), ("$a", JsonSerializer.Serialize<IReadOnlyDictionary<string, string>>(merged, RegistryJsonContext.Default.IReadOnlyDictionaryStringString)), ("$n", name));
            update.ExecuteNonQuery();
            _dynamicGroups = null;
            return group.Version + 1;
        }
    }

    /// <summary>Deletes a group without child groups; its memberships and policy attachments go with it.</summary>
    public TrellisError? DeleteThingGroup(string name, long? expectedVersion)
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadThingGroup(connection, name) is not { } group)
            {
                return null; // AWS: deleting a group that does not exist succeeds
            }

            if (expectedVersion is { } expected && expected != group.Version)
            {
                return new TrellisError.VersionConflict($"The version for thing group {name} does not match the expected version ({group.Version} != {expected}).");
            }

            using (var children = Command(connection, "SELECT COUNT(*) FROM thing_groups WHERE parent = $n", ("$n", name)))
            {
                if ((long)children.ExecuteScalar()! > 0)
                {
                    return new TrellisError.InvalidRequest($"Thing group '{name}' has child groups: delete them first.");
                }
            }

            List<string> members;
            using (var select = Command(connection, "SELECT thing_name FROM thing_group_members WHERE group_name = $n", ("$n", name)))
            {
                members = ReadAll(select, r => r.GetString(0));
            }

            using var delete = Command(connection, "DELETE FROM policy_targets WHERE target = $t; DELETE FROM thing_group_members WHERE group_name = $n; DELETE FROM thing_groups WHERE name = $n", ("$t", group.Arn), ("$n", name));
            delete.ExecuteNonQuery();
            _dynamicGroups = null;
            _targetPolicies.Remove(group.Arn);
            Changed();
            foreach (var member in members)
            {
                ThingChanged?.Invoke(member);
            }

            return null;
        }
    }

    /// <summary>Adds a thing to a group (by name or ARN). Its policies apply to the thing's connections at once.</summary>
    public TrellisError? AddThingToThingGroup(string? groupName, string? groupArn, string? thingName, string? thingArn)
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            var resolved = ResolveMembership(connection, groupName, groupArn, thingName, thingArn, out var group, out var thing);
            if (resolved is not null)
            {
                return resolved;
            }

            if (ReadThingGroup(connection, group!)!.IsDynamic)
            {
                return new TrellisError.InvalidRequest($"Thing group '{group}' is dynamic: its members are the things its query matches, and cannot be added by hand.");
            }

            // Dynamic memberships do not count against the limit (AWS counts them separately).
            using (var count = Command(connection, "SELECT COUNT(*) FROM thing_group_members m JOIN thing_groups g ON g.name = m.group_name WHERE m.thing_name = $t AND m.group_name <> $g AND g.query_string IS NULL", ("$t", thing!), ("$g", group!)))
            {
                if ((long)count.ExecuteScalar()! >= MaxGroupsPerThing)
                {
                    return new TrellisError.InvalidRequest($"Thing '{thing}' already belongs to {MaxGroupsPerThing} groups, the maximum.");
                }
            }

            using var insert = Command(connection, "INSERT OR IGNORE INTO thing_group_members(group_name, thing_name) VALUES ($g, $t)", ("$g", group!), ("$t", thing!));
            if (insert.ExecuteNonQuery() > 0)
            {
                Changed();
                ThingGroupMembershipChanged?.Invoke(thing!, true);
                ThingChanged?.Invoke(thing!);
            }

            return null;
        }
    }

    public TrellisError? RemoveThingFromThingGroup(string? groupName, string? groupArn, string? thingName, string? thingArn)
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            var resolved = ResolveMembership(connection, groupName, groupArn, thingName, thingArn, out var group, out var thing);
            if (resolved is not null)
            {
                return resolved;
            }

            if (ReadThingGroup(connection, group!)!.IsDynamic)
            {
                return new TrellisError.InvalidRequest($"Thing group '{group}' is dynamic: its members are the things its query matches, and cannot be removed by hand.");
            }

            using var delete = Command(connection, "DELETE FROM thing_group_members WHERE group_name = $g AND thing_name = $t", ("$g", group!), ("$t", thing!));
            if (delete.ExecuteNonQuery() > 0)
            {
                Changed();
                ThingGroupMembershipChanged?.Invoke(thing!, false);
                ThingChanged?.Invoke(thing!);
            }

            return null;
        }
    }

    /// <summary>Things in a group (and, when <paramref name="recursive"/>, in its descendants), in name order.</summary>
    public Result<Page<string>> ListThingsInThingGroup(string name, bool recursive, string? nextToken, int? maxResults)
    {
        using var connection = _db.Open();
        if (ReadThingGroup(connection, name) is null)
        {
            return NotFoundThingGroup(name);
        }

        var groups = recursive ? Descendants(connection, name, recursive: true) : [];
        groups.Add(name);
        var things = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var group in groups)
        {
            using var command = Command(connection, "SELECT thing_name FROM thing_group_members WHERE group_name = $g", ("$g", group));
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                things.Add(reader.GetString(0));
            }
        }

        return PageOfKeys(things, nextToken, maxResults);
    }

    /// <summary>Every thing in a group and its descendant groups, in name order, in one read (a job's targets); null when the group does not exist.</summary>
    public List<string>? AllThingsInThingGroup(string name)
    {
        using var connection = _db.Open();
        if (ReadThingGroup(connection, name) is null)
        {
            return null;
        }

        using var command = Command(connection, """
            WITH RECURSIVE tree(name) AS (
                SELECT $g
                UNION
                SELECT g.name FROM thing_groups g JOIN tree t ON g.parent = t.name)
            SELECT DISTINCT m.thing_name FROM thing_group_members m JOIN tree t ON m.group_name = t.name ORDER BY m.thing_name
            """, ("$g", name));
        return ReadAll(command, r => r.GetString(0));
    }

    /// <summary>The groups a thing is directly in, in name order.</summary>
    public Result<Page<ThingGroupRecord>> ListThingGroupsForThing(string thingName, string? nextToken, int? maxResults)
    {
        var size = PageSize(maxResults);
        using var connection = _db.Open();
        if (ReadThing(connection, thingName) is null)
        {
            return NotFoundThing(thingName);
        }

        using var command = Command(connection, "SELECT group_name FROM thing_group_members WHERE thing_name = $t AND group_name > $after ORDER BY group_name LIMIT $limit",
            ("$t", thingName), ("$after", DecodeToken(nextToken) ?? string.Empty), ("$limit", size + 1));
        var names = ReadAll(command, r => r.GetString(0));
        return ToPage(names.Select(n => ReadThingGroup(connection, n)!).ToList(), size, g => g.Name);
    }

    /// <summary>
    /// ARNs of every group whose policies apply to a thing: the groups it is in and all their
    /// ancestors (a policy on a parent group covers the things of its child groups).
    /// </summary>
    /// <summary>
    /// A connecting device's thing and the ARNs of its groups and their ancestors, kept in memory
    /// until the registry's change generation moves (any thing, group, membership, policy or
    /// attachment change): reconnects read nothing from the database. Only existing things are kept.
    /// </summary>
    public (ThingRecord Thing, List<string> GroupArns)? ThingForPolicy(string thingName)
    {
        var generation = PolicyGeneration;
        if (_policyThings.TryGetValue(thingName, out var known) && known.Generation == generation)
        {
            return (known.Thing, known.GroupArns);
        }

        if (DescribeThing(thingName) is not { IsSuccess: true } thing)
        {
            return null;
        }

        var groups = PolicyGroupArnsFor(thingName);
        _policyThings[thingName] = (generation, thing.Value!, groups);
        return (thing.Value!, groups);
    }

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (long Generation, ThingRecord Thing, List<string> GroupArns)> _policyThings = new(StringComparer.Ordinal);

    public List<string> PolicyGroupArnsFor(string thingName)
    {
        using var connection = _db.Open();
        using var command = Command(connection, """
            WITH RECURSIVE chain(name) AS (
                SELECT group_name FROM thing_group_members WHERE thing_name = $t
                UNION
                SELECT g.parent FROM thing_groups g JOIN chain c ON g.name = c.name WHERE g.parent IS NOT NULL)
            SELECT name FROM chain
            """, ("$t", thingName));
        return ReadAll(command, r => ThingGroupArn(r.GetString(0)));
    }

    /// <summary>The group name in a thing-group ARN (arn:aws:iot:region:account:thinggroup/NAME), or null.</summary>
    public static string? ThingGroupNameFromArn(string arn)
    {
        const string marker = ":thinggroup/";
        var at = arn.IndexOf(marker, StringComparison.Ordinal);
        return arn.StartsWith("arn:", StringComparison.Ordinal) && at > 0 ? arn[(at + marker.Length)..] : null;
    }

    private string ThingGroupArn(string name) => Options.Arn("thinggroup/" + name);

    private TrellisError? ResolveMembership(SqliteConnection connection, string? groupName, string? groupArn, string? thingName, string? thingArn, out string? group, out string? thing)
    {
        group = groupName ?? (groupArn is null ? null : ThingGroupNameFromArn(groupArn));
        thing = thingName ?? (thingArn is null ? null : thingArn[(thingArn.LastIndexOf('/') + 1)..]);
        if (group is null || thing is null)
        {
            return new TrellisError.InvalidRequest("Give the group (thingGroupName or thingGroupArn) and the thing (thingName or thingArn).");
        }

        if (ReadThingGroup(connection, group) is null)
        {
            return NotFoundThingGroup(group);
        }

        return ReadThing(connection, thing) is null ? NotFoundThing(thing) : null;
    }

    /// <summary>Children of a group, or all its descendants.</summary>
    private static HashSet<string> Descendants(SqliteConnection connection, string name, bool recursive)
    {
        var found = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Queue<string>([name]);
        while (pending.TryDequeue(out var current))
        {
            using var command = Command(connection, "SELECT name FROM thing_groups WHERE parent = $p", ("$p", current));
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                var child = reader.GetString(0);
                if (found.Add(child) && recursive)
                {
                    pending.Enqueue(child);
                }
            }
        }

        return found;
    }

    private ThingGroupRecord? ReadThingGroup(SqliteConnection connection, string name)
    {
        string id, attributesJson;
        string? parent, description, queryString, queryVersion, indexName;
        long version, created;
        using (var command = Command(connection, "SELECT id, parent, description, attributes, version, created_ms, query_string, query_version, index_name FROM thing_groups WHERE name = $n", ("$n", name)))
        using (var reader = command.ExecuteReader())
        {
            if (!reader.Read())
            {
                return null;
            }

            id = reader.GetString(0);
            parent = reader.IsDBNull(1) ? null : reader.GetString(1);
            description = reader.IsDBNull(2) ? null : reader.GetString(2);
            attributesJson = reader.GetString(3);
            version = reader.GetInt64(4);
            created = reader.GetInt64(5);
            queryString = reader.IsDBNull(6) ? null : reader.GetString(6);
            queryVersion = reader.IsDBNull(7) ? null : reader.GetString(7);
            indexName = reader.IsDBNull(8) ? null : reader.GetString(8);
        }

        // Ancestors from the root down: walk up the parents (at most 7 levels).
        var ancestors = new List<string>();
        for (var up = parent; up is not null && ancestors.Count < MaxGroupDepth;)
        {
            ancestors.Insert(0, up);
            using var command = Command(connection, "SELECT parent FROM thing_groups WHERE name = $n", ("$n", up));
            up = command.ExecuteScalar() as string;
        }

        var attributes = JsonSerializer.Deserialize(attributesJson, RegistryJsonContext.Default.IReadOnlyDictionaryStringString) ?? new Dictionary<string, string>();
        return new ThingGroupRecord(name, id, ThingGroupArn(name), parent, description, attributes, version, created, ancestors, queryString, queryVersion, indexName);
    }

    /// <summary>A new group's name and attributes, checked as AWS checks them.</summary>
    private static TrellisError? ValidateNewGroup(string name, IReadOnlyDictionary<string, string>? attributes) =>
        TypeOrGroupNamePattern().IsMatch(name)
            ? ValidateAttributes(attributes)
            : new TrellisError.InvalidRequest($"Thing group name '{name}' is invalid: use 1-128 characters from a-z A-Z 0-9 : _ -");

    private static TrellisError NotFoundThingGroup(string name) => new TrellisError.NotFound($"Thing group {name} cannot be found.");
}
