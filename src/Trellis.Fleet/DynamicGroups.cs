using Lucene.Net.Search;
using Microsoft.Extensions.Logging;
using Trellis.Core.Errors;
using Trellis.Registry;

namespace Trellis.Fleet;

/// <summary>
/// Dynamic thing groups (AWS's CreateDynamicThingGroup): a group whose members are the things its
/// fleet-index query matches. Membership is written to the registry like a static group's, so
/// policies attached to the group and jobs that target it (CONTINUOUS selection included) follow
/// it. Each batch the index makes searchable is checked against every dynamic group's query, so a
/// thing joins or leaves within the index's refresh interval of the change that made it match.
/// </summary>
public sealed partial class DynamicGroups
{
    private readonly RegistryService _registry;
    private readonly FleetIndex _index;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    // Both by group id: a group deleted by DeleteThingGroup and created again under its name starts afresh.
    private readonly Dictionary<string, (string QueryString, Query Query)> _queries = new(StringComparer.Ordinal);
    private readonly Dictionary<string, HashSet<string>> _members = new(StringComparer.Ordinal);

    public DynamicGroups(RegistryService registry, FleetIndex index, ILogger<DynamicGroups> logger)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(index);
        _registry = registry;
        _index = index;
        _logger = logger;
        index.Indexed += Reconcile;
        index.Rebuilt += ReconcileAll;
    }

    /// <summary>ACTIVE once the group's membership follows the index; BUILDING or REBUILDING while the index is being built.</summary>
    public string StatusOf(ThingGroupRecord group) => group is { IsDynamic: true } && _index.Status != "ACTIVE" ? _index.Status : "ACTIVE";

    public Result<ThingGroupRecord> Create(string name, string? description, IReadOnlyDictionary<string, string>? attributes, string queryString, string? queryVersion, string? indexName)
    {
        if (Check(queryString, indexName) is { } refused)
        {
            return refused;
        }

        var created = _registry.CreateDynamicThingGroup(name, description, attributes, queryString, queryVersion, indexName ?? FleetIndex.ThingIndexName);
        if (created.IsSuccess)
        {
            ReconcileGroup(created.Value!);
        }

        return created;
    }

    public Result<long> Update(string name, string? description, IReadOnlyDictionary<string, string?>? attributes, bool merge, long? expectedVersion, string? queryString, string? queryVersion, string? indexName)
    {
        if (queryString is not null && Check(queryString, indexName) is { } refused)
        {
            return refused;
        }

        var updated = _registry.UpdateDynamicThingGroup(name, description, attributes, merge, expectedVersion, queryString, queryVersion);
        if (updated.IsSuccess && queryString is not null && _registry.DescribeThingGroup(name) is { IsSuccess: true } group)
        {
            ReconcileGroup(group.Value!);
        }

        return updated;
    }

    public TrellisError? Delete(string name, long? expectedVersion)
    {
        if (_registry.DescribeThingGroup(name) is { IsSuccess: true, Value.IsDynamic: false })
        {
            return new TrellisError.InvalidRequest($"Thing group '{name}' is static: use DeleteThingGroup.");
        }

        var group = _registry.DescribeThingGroup(name);
        var error = _registry.DeleteThingGroup(name, expectedVersion);
        if (error is null && group.IsSuccess)
        {
            lock (_lock)
            {
                _queries.Remove(group.Value!.Id);
                _members.Remove(group.Value!.Id);
            }
        }

        return error;
    }

    /// <summary>A dynamic group's query must parse, must not depend on group membership (that would feed on itself), and needs the index on.</summary>
    private TrellisError? Check(string queryString, string? indexName)
    {
        if (_index.CheckIndex(indexName) is { } missing)
        {
            return missing is TrellisError.NotFound ? new TrellisError.InvalidRequest("Dynamic thing groups need fleet indexing: " + missing.Message) : missing;
        }

        var parsed = FleetQuery.Parse(queryString, out var fields);
        if (!parsed.IsSuccess)
        {
            return parsed.Error;
        }

        return fields.Contains("thingGroupNames")
            ? new TrellisError.InvalidQuery("A dynamic group's query cannot use thingGroupNames: membership would depend on itself.")
            : null;
    }

    private void ReconcileAll()
    {
        foreach (var group in _registry.DynamicThingGroups())
        {
            ReconcileGroup(group);
        }
    }

    private void ReconcileGroup(ThingGroupRecord group)
    {
        if (QueryOf(group) is { } query && _index.Matching(query, null) is { } matching)
        {
            Apply(group, matching, among: null);
        }
    }

    /// <summary>Checks the things of an indexed batch against every dynamic group.</summary>
    private void Reconcile(IReadOnlyCollection<string> things)
    {
        foreach (var group in _registry.DynamicThingGroups())
        {
            if (QueryOf(group) is { } query && _index.Matching(query, things) is { } matching)
            {
                Apply(group, matching, things);
            }
        }
    }

    private Query? QueryOf(ThingGroupRecord group)
    {
        lock (_lock)
        {
            if (_queries.TryGetValue(group.Id, out var known) && known.QueryString == group.QueryString)
            {
                return known.Query;
            }
        }

        var parsed = FleetQuery.Parse(group.QueryString!, out _);
        if (!parsed.IsSuccess)
        {
            Log.BadQuery(_logger, group.Name, parsed.Error!.Message);
            return null;
        }

        lock (_lock)
        {
            _queries[group.Id] = (group.QueryString!, parsed.Value!);
        }

        return parsed.Value;
    }

    /// <summary>Makes the group's members among <paramref name="among"/> (all things when null) exactly <paramref name="matching"/>.</summary>
    private void Apply(ThingGroupRecord group, HashSet<string> matching, IReadOnlyCollection<string>? among)
    {
        lock (_lock)
        {
            List<string> add, remove;
            if (!_members.TryGetValue(group.Id, out var members))
            {
                _members[group.Id] = members = _registry.MembersOf(group.Name);
            }

            add = [.. matching.Where(t => !members.Contains(t))];
            remove = [.. (among ?? (IEnumerable<string>)members).Where(t => members.Contains(t) && !matching.Contains(t))];
            members.UnionWith(add);
            members.ExceptWith(remove);

            // Under the lock: a request thread (create, update) and the indexer thread write in turn.
            _registry.SetDynamicMembers(group.Name, add, remove);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Warning, Message = "Dynamic thing group {Group} has a query that no longer parses ({Reason}); its members stay as they are until the query is updated.")]
        public static partial void BadQuery(ILogger logger, string group, string reason);
    }
}
