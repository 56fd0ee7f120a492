using System.Text.Json;
using Trellis.Core.Errors;

namespace Trellis.Registry;

/// <summary>
/// Dynamic thing groups: a group with a fleet-index query. Its members are kept in
/// <c>thing_group_members</c> like a static group's, written by the fleet index as things change,
/// so policies attached to the group and jobs that target it treat it as any other group.
/// </summary>
public sealed partial class RegistryService
{
    /// <summary>Creates a dynamic group (no parent: AWS's dynamic groups stand outside hierarchies). Its members are set by <see cref="SetDynamicMembers"/>.</summary>
    public Result<ThingGroupRecord> CreateDynamicThingGroup(string name, string? description, IReadOnlyDictionary<string, string>? attributes, string queryString, string? queryVersion, string indexName)
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
                return new TrellisError.AlreadyExists($"Thing group '{name}' already exists.", existing.Id, existing.Arn);
            }

            using var insert = Command(connection,
                "INSERT INTO thing_groups(name, id, parent, description, attributes, version, created_ms, query_string, query_version, index_name) VALUES ($n, $id, NULL, $d, $a, 1, $ts, $q, $qv, $i)",
                ("$n", name), ("$id", Guid.NewGuid().ToString()), ("$d", description),
                ("$a", JsonSerializer.Serialize(attributes ?? new Dictionary<string, string>(), RegistryJsonContext.Default.IReadOnlyDictionaryStringString)), ("$ts", NowMs),
                ("$q", queryString), ("$qv", queryVersion ?? "2017-09-30"), ("$i", indexName));
            insert.ExecuteNonQuery();
            _dynamicGroups = null;
            return ReadThingGroup(connection, name)!;
        }
    }

    /// <summary>Changes a dynamic group's description, attributes or query; returns the new version.</summary>
    public Result<long> UpdateDynamicThingGroup(string name, string? description, IReadOnlyDictionary<string, string?>? attributes, bool merge, long? expectedVersion, string? queryString, string? queryVersion)
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadThingGroup(connection, name) is not { } group)
            {
                return NotFoundThingGroup(name);
            }

            if (!group.IsDynamic)
            {
                return new TrellisError.InvalidRequest($"Thing group '{name}' is static: use UpdateThingGroup.");
            }
        }

        var updated = UpdateThingGroup(name, description, attributes, merge, expectedVersion);
        if (!updated.IsSuccess || (queryString is null && queryVersion is null))
        {
            return updated;
        }

        lock (_writeLock)
        {
            using var connection = _db.Open();
            using var update = Command(connection, "UPDATE thing_groups SET query_string = COALESCE($q, query_string), query_version = COALESCE($qv, query_version) WHERE name = $n",
                ("$q", queryString), ("$qv", queryVersion), ("$n", name));
            update.ExecuteNonQuery();
            _dynamicGroups = null;
            return updated;
        }
    }

    /// <summary>
    /// Every dynamic group, in name order. Read once and kept until a group is created, changed or
    /// deleted: the fleet index asks at each refresh, up to ten times a second.
    /// </summary>
    public List<ThingGroupRecord> DynamicThingGroups()
    {
        if (Volatile.Read(ref _dynamicGroups) is { } known)
        {
            return [.. known];
        }

        using var connection = _db.Open();
        using var command = Command(connection, "SELECT name FROM thing_groups WHERE query_string IS NOT NULL ORDER BY name");
        List<ThingGroupRecord> groups = [.. ReadAll(command, r => r.GetString(0)).Select(n => ReadThingGroup(connection, n)).OfType<ThingGroupRecord>()];
        Volatile.Write(ref _dynamicGroups, groups);
        return [.. groups];
    }

    /// <summary>The dynamic groups as last read; null once a group changed.</summary>
    private List<ThingGroupRecord>? _dynamicGroups;

    /// <summary>The things in a group right now (no descendants).</summary>
    public HashSet<string> MembersOf(string group)
    {
        using var connection = _db.Open();
        using var command = Command(connection, "SELECT thing_name FROM thing_group_members WHERE group_name = $g", ("$g", group));
        return [.. ReadAll(command, r => r.GetString(0))];
    }

    /// <summary>
    /// Adds and removes members of a dynamic group in one transaction (things that no longer
    /// exist are skipped). Raises the membership events, so jobs with CONTINUOUS selection and
    /// connection policies follow.
    /// </summary>
    public void SetDynamicMembers(string group, IReadOnlyCollection<string> add, IReadOnlyCollection<string> remove)
    {
        if (add.Count == 0 && remove.Count == 0)
        {
            return;
        }

        var joined = new List<string>();
        var left = new List<string>();
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadThingGroup(connection, group) is not { IsDynamic: true })
            {
                return;
            }

            using var transaction = connection.BeginTransaction();
            using (var insert = Command(connection, "INSERT OR IGNORE INTO thing_group_members(group_name, thing_name) SELECT $g, name FROM things WHERE name = $t", ("$g", group), ("$t", string.Empty)))
            {
                insert.Transaction = transaction;
                foreach (var thing in add)
                {
                    insert.Parameters["$t"].Value = thing;
                    if (insert.ExecuteNonQuery() > 0)
                    {
                        joined.Add(thing);
                    }
                }
            }

            using (var delete = Command(connection, "DELETE FROM thing_group_members WHERE group_name = $g AND thing_name = $t", ("$g", group), ("$t", string.Empty)))
            {
                delete.Transaction = transaction;
                foreach (var thing in remove)
                {
                    delete.Parameters["$t"].Value = thing;
                    if (delete.ExecuteNonQuery() > 0)
                    {
                        left.Add(thing);
                    }
                }
            }

            transaction.Commit();
            if (joined.Count + left.Count > 0)
            {
                Changed();
            }

            foreach (var thing in joined)
            {
                ThingGroupMembershipChanged?.Invoke(thing, true);
                ThingChanged?.Invoke(thing);
            }

            foreach (var thing in left)
            {
                ThingGroupMembershipChanged?.Invoke(thing, false);
                ThingChanged?.Invoke(thing);
            }
        }
    }

    /// <summary>
    /// Every thing with the groups it is directly in, in name order, a page at a time (the fleet
    /// index's rebuild): two reads per page, not two per thing.
    /// </summary>
    public IEnumerable<(ThingRecord Thing, List<string> Groups)> AllThingsWithGroups(int pageSize = 2000)
    {
        var after = string.Empty;
        while (true)
        {
            List<(ThingRecord Thing, List<string> Groups)> page;
            using (var connection = _db.Open())
            {
                using var things = Command(connection, "SELECT name, id, type_name, attributes, version FROM things WHERE name > $after ORDER BY name LIMIT $limit", ("$after", after), ("$limit", pageSize));
                page = [.. ReadAll(things, MapThing).Select(t => (t, new List<string>()))];
                if (page.Count == 0)
                {
                    yield break;
                }

                var byName = page.ToDictionary(p => p.Thing.Name, p => p.Groups, StringComparer.Ordinal);
                using var groups = Command(connection, "SELECT thing_name, group_name FROM thing_group_members WHERE thing_name > $after AND thing_name <= $last ORDER BY group_name",
                    ("$after", after), ("$last", page[^1].Thing.Name));
                using var reader = groups.ExecuteReader();
                while (reader.Read())
                {
                    if (byName.TryGetValue(reader.GetString(0), out var list))
                    {
                        list.Add(reader.GetString(1));
                    }
                }
            }

            foreach (var item in page)
            {
                yield return item;
            }

            after = page[^1].Thing.Name;
        }
    }

    /// <summary>A thing with the groups it is directly in (group names in order), or null when it does not exist.</summary>
    public (ThingRecord Thing, List<string> Groups)? ThingWithGroups(string name)
    {
        using var connection = _db.Open();
        if (ReadThing(connection, name) is not { } thing)
        {
            return null;
        }

        using var command = Command(connection, "SELECT group_name FROM thing_group_members WHERE thing_name = $t ORDER BY group_name", ("$t", name));
        return (thing, ReadAll(command, r => r.GetString(0)));
    }

    /// <summary>The stored fleet-indexing configuration (JSON), or null when none was ever set.</summary>
    public string? ReadIndexingConfiguration(string name)
    {
        using var connection = _db.Open();
        using var command = Command(connection, "SELECT configuration FROM fleet_indexing WHERE name = $n", ("$n", name));
        return command.ExecuteScalar() as string;
    }

    /// <summary>Stores the fleet-indexing configuration (JSON).</summary>
    public void WriteIndexingConfiguration(string name, string configuration)
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            using var command = Command(connection, "INSERT INTO fleet_indexing(name, configuration, updated_ms) VALUES ($n, $c, $ts) ON CONFLICT(name) DO UPDATE SET configuration = excluded.configuration, updated_ms = excluded.updated_ms",
                ("$n", name), ("$c", configuration), ("$ts", NowMs));
            command.ExecuteNonQuery();
        }
    }
}
