using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Data.Sqlite;
using Trellis.Core.Errors;

namespace Trellis.Registry;

public sealed partial class RegistryService
{
    /// <summary>AWS allows three searchable attributes per thing type.</summary>
    private const int MaxSearchableAttributes = 3;

    [GeneratedRegex("^[a-zA-Z0-9:_-]{1,128}$")]
    private static partial Regex TypeOrGroupNamePattern();

    public Result<ThingTypeRecord> CreateThingType(string name, string? description, IReadOnlyList<string>? searchableAttributes)
    {
        if (!TypeOrGroupNamePattern().IsMatch(name))
        {
            return new TrellisError.InvalidRequest($"Thing type name '{name}' is invalid: use 1-128 characters from a-z A-Z 0-9 : _ -");
        }

        var searchable = searchableAttributes ?? [];
        if (searchable.Count > MaxSearchableAttributes || searchable.Any(a => !AttributeNamePattern().IsMatch(a)))
        {
            return new TrellisError.InvalidRequest($"searchableAttributes: at most {MaxSearchableAttributes} attribute names of 1-128 characters from a-z A-Z 0-9 _ . , @ / : # = [ ] -");
        }

        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadThingType(connection, name) is { } existing)
            {
                if (existing.Description == description && existing.SearchableAttributes.SequenceEqual(searchable))
                {
                    return existing;
                }

                return new TrellisError.AlreadyExists($"Thing type '{name}' already exists with a different configuration.", existing.Id, existing.Arn);
            }

            using var insert = Command(connection,
                "INSERT INTO thing_types(name, id, description, searchable_attributes, created_ms) VALUES ($n, $id, $d, $s, $ts)",
                ("$n", name), ("$id", Guid.NewGuid().ToString()), ("$d", description), ("$s", JsonSerializer.Serialize(searchable, RegistryJsonContext.Default.IReadOnlyListString)), ("$ts", NowMs));
            insert.ExecuteNonQuery();
            return ReadThingType(connection, name)!;
        }
    }

    public Result<ThingTypeRecord> DescribeThingType(string name)
    {
        using var connection = _db.Open();
        return ReadThingType(connection, name) is { } type ? type : NotFoundThingType(name);
    }

    public Page<ThingTypeRecord> ListThingTypes(string? nextToken, int? maxResults, string? nameFilter)
    {
        var size = PageSize(maxResults);
        using var connection = _db.Open();
        var sql = "SELECT name, id, description, searchable_attributes, deprecated, deprecated_ms, created_ms FROM thing_types WHERE name > $after";
        var parameters = new List<(string, object?)> { ("$after", DecodeToken(nextToken) ?? string.Empty), ("$limit", size + 1) };
        if (nameFilter is not null)
        {
            sql += " AND name = $name";
            parameters.Add(("$name", nameFilter));
        }

        using var command = Command(connection, sql + " ORDER BY name LIMIT $limit", [.. parameters]);
        return ToPage(ReadAll(command, MapThingType), size, t => t.Name);
    }

    /// <summary>Deprecates a thing type (no new things may use it) or undoes that.</summary>
    public TrellisError? DeprecateThingType(string name, bool undo)
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadThingType(connection, name) is null)
            {
                return NotFoundThingType(name);
            }

            using var update = Command(connection, "UPDATE thing_types SET deprecated = $d, deprecated_ms = $ts WHERE name = $n",
                ("$d", undo ? 0 : 1), ("$ts", undo ? null : NowMs), ("$n", name));
            update.ExecuteNonQuery();
            return null;
        }
    }

    /// <summary>Deletes a deprecated thing type that no thing uses any more (as AWS requires).</summary>
    public TrellisError? DeleteThingType(string name)
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadThingType(connection, name) is not { } type)
            {
                return NotFoundThingType(name);
            }

            if (!type.Deprecated)
            {
                return new TrellisError.InvalidRequest($"Thing type '{name}' must be deprecated (DeprecateThingType) before it can be deleted.");
            }

            using (var count = Command(connection, "SELECT COUNT(*) FROM things WHERE type_name = $n", ("$n", name)))
            {
                var users = (long)count.ExecuteScalar()!;
                if (users > 0)
                {
                    return new TrellisError.InvalidRequest($"Thing type '{name}' is still used by {users} thing(s): change or remove their type first.");
                }
            }

            using var delete = Command(connection, "DELETE FROM thing_types WHERE name = $n", ("$n", name));
            delete.ExecuteNonQuery();
            return null;
        }
    }

    /// <summary>A thing may take a type only if the type exists and is not deprecated.</summary>
    private TrellisError? ValidateTypeForThing(SqliteConnection connection, string typeName)
    {
        if (ReadThingType(connection, typeName) is not { } type)
        {
            return NotFoundThingType(typeName);
        }

        return type.Deprecated ? new TrellisError.InvalidRequest($"Thing type '{typeName}' is deprecated: no thing can be given this type.") : null;
    }

    private ThingTypeRecord? ReadThingType(SqliteConnection connection, string name)
    {
        using var command = Command(connection, "SELECT name, id, description, searchable_attributes, deprecated, deprecated_ms, created_ms FROM thing_types WHERE name = $n", ("$n", name));
        using var reader = command.ExecuteReader();
        return reader.Read() ? MapThingType(reader) : null;
    }

    private ThingTypeRecord MapThingType(SqliteDataReader reader) => new(
        reader.GetString(0),
        reader.GetString(1),
        Options.Arn("thingtype/" + reader.GetString(0)),
        reader.IsDBNull(2) ? null : reader.GetString(2),
        JsonSerializer.Deserialize(reader.GetString(3), RegistryJsonContext.Default.IReadOnlyListString) ?? [],
        reader.GetInt64(4) != 0,
        reader.IsDBNull(5) ? null : reader.GetInt64(5),
        reader.GetInt64(6));

    private static TrellisError NotFoundThingType(string name) => new TrellisError.NotFound($"Thing type {name} cannot be found.");
}
