using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Data.Sqlite;
using Trellis.Core.Errors;

namespace Trellis.Registry;

public sealed partial class RegistryService
{
    /// <summary>AWS limits a thing to 50 attributes.</summary>
    private const int MaxAttributes = 50;

    [GeneratedRegex("^[a-zA-Z0-9:_-]{1,128}$")]
    private static partial Regex ThingNamePattern();

    [GeneratedRegex("^[a-zA-Z0-9_.,@/:#=\\[\\]-]{1,128}$")]
    private static partial Regex AttributeNamePattern();

    [GeneratedRegex("^[a-zA-Z0-9_.,@/:#=\\[\\]-]{0,800}$")]
    private static partial Regex AttributeValuePattern();

    public static TrellisError? ValidateThingName(string name) =>
        ThingNamePattern().IsMatch(name) ? null : new TrellisError.InvalidRequest($"Thing name '{name}' is invalid: use 1-128 characters from a-z A-Z 0-9 : _ -");

    public Result<ThingRecord> CreateThing(string name, string? typeName, IReadOnlyDictionary<string, string>? attributes)
    {
        if (ValidateThingName(name) is { } invalid)
        {
            return invalid;
        }

        if (ValidateAttributes(attributes) is { } badAttributes)
        {
            return badAttributes;
        }

        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (typeName is not null && ValidateTypeForThing(connection, typeName) is { } badType)
            {
                return badType;
            }

            if (ReadThing(connection, name) is { } existing)
            {
                // CreateThing is idempotent for an identical request (AWS behaviour).
                if (existing.TypeName == typeName && SameAttributes(existing.Attributes, attributes))
                {
                    return existing;
                }

                return new TrellisError.AlreadyExists($"Thing '{name}' already exists with a different configuration.", existing.Id, existing.Arn);
            }

            var id = Guid.NewGuid().ToString();
            using var insert = Command(connection,
                "INSERT INTO things(name, id, type_name, attributes, version, created_ms) VALUES ($n, $id, $t, $a, 1, $ts)",
                ("$n", name), ("$id", id), ("$t", typeName), ("$a", JsonSerializer.Serialize(attributes ?? new Dictionary<string, string>(), RegistryJsonContext.Default.IReadOnlyDictionaryStringString)), ("$ts", NowMs));
            insert.ExecuteNonQuery();
            ThingChanged?.Invoke(name);
            return ReadThing(connection, name)!;
        }
    }

    public Result<ThingRecord> DescribeThing(string name)
    {
        using var connection = _db.Open();
        return ReadThing(connection, name) is { } thing ? thing : NotFoundThing(name);
    }

    /// <summary>How many things are registered.</summary>
    public long CountThings()
    {
        using var connection = _db.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT COUNT(*) FROM things";
        return (long)command.ExecuteScalar()!;
    }

    /// <summary>Whether a thing is registered (one indexed point read).</summary>
    public bool ThingExists(string name)
    {
        using var connection = _db.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT 1 FROM things WHERE name = $name";
        command.Parameters.AddWithValue("$name", name);
        return command.ExecuteScalar() is not null;
    }

    public Page<ThingRecord> ListThings(string? nextToken, int? maxResults, string? attributeName, string? attributeValue, bool prefix, string? typeName)
    {
        using var connection = _db.Open();
        var size = PageSize(maxResults);
        var sql = "SELECT name, id, type_name, attributes, version FROM things WHERE name > $after";
        var parameters = new List<(string, object?)> { ("$after", DecodeToken(nextToken) ?? string.Empty), ("$limit", size + 1) };
        if (attributeName is not null)
        {
            sql += prefix ? " AND json_extract(attributes, $path) LIKE $value ESCAPE '\\'" : " AND json_extract(attributes, $path) = $value";
            parameters.Add(("$path", "$.\"" + attributeName.Replace("\"", string.Empty, StringComparison.Ordinal) + "\""));
            parameters.Add(("$value", prefix ? EscapeLike(attributeValue ?? string.Empty) + "%" : attributeValue ?? string.Empty));
        }

        if (typeName is not null)
        {
            sql += " AND type_name = $type";
            parameters.Add(("$type", typeName));
        }

        using var command = Command(connection, sql + " ORDER BY name LIMIT $limit", [.. parameters]);
        return ToPage(ReadAll(command, MapThing), size, t => t.Name);
    }

    public Result<ThingRecord> UpdateThing(string name, string? typeName, bool removeThingType, IReadOnlyDictionary<string, string?>? attributes, bool merge, long? expectedVersion)
    {
        if (attributes is not null && ValidateAttributes(attributes.Where(a => a.Value is not null).ToDictionary(a => a.Key, a => a.Value!)) is { } badAttributes)
        {
            return badAttributes;
        }

        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadThing(connection, name) is not { } thing)
            {
                return NotFoundThing(name);
            }

            if (expectedVersion is { } expected && expected != thing.Version)
            {
                return new TrellisError.VersionConflict($"The version for thing {name} does not match the expected version ({thing.Version} != {expected}).");
            }

            if (typeName is not null && typeName != thing.TypeName && ValidateTypeForThing(connection, typeName) is { } badType)
            {
                return badType;
            }

            var merged = new Dictionary<string, string>(merge ? thing.Attributes : new Dictionary<string, string>(), StringComparer.Ordinal);
            if (attributes is not null)
            {
                if (!merge)
                {
                    merged.Clear();
                }

                foreach (var (key, value) in attributes)
                {
                    // AWS: an empty or null value removes the attribute when merging.
                    if (string.IsNullOrEmpty(value))
                    {
                        merged.Remove(key);
                    }
                    else
                    {
                        merged[key] = value;
                    }
                }
            }
            else
            {
                merged = new Dictionary<string, string>(thing.Attributes, StringComparer.Ordinal);
            }

            if (merged.Count > MaxAttributes)
            {
                return new TrellisError.InvalidRequest($"A thing may have at most {MaxAttributes} attributes.");
            }

            var newType = removeThingType ? null : typeName ?? thing.TypeName;
            using var update = Command(connection, "UPDATE things SET attributes = $a, type_name = $t, version = version + 1 WHERE name = $n",
                ("$a", JsonSerializer.Serialize<IReadOnlyDictionary<string, string>>(merged, RegistryJsonContext.Default.IReadOnlyDictionaryStringString)), ("$t", newType), ("$n", name));
            update.ExecuteNonQuery();
            Changed();
            ThingChanged?.Invoke(name);
            return ReadThing(connection, name)!;
        }
    }

    public TrellisError? DeleteThing(string name, long? expectedVersion)
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadThing(connection, name) is not { } thing)
            {
                // AWS: deleting a thing that does not exist succeeds.
                return null;
            }

            if (expectedVersion is { } expected && expected != thing.Version)
            {
                return new TrellisError.VersionConflict($"The version for thing {name} does not match the expected version ({thing.Version} != {expected}).");
            }

            using var delete = Command(connection, "DELETE FROM things WHERE name = $n", ("$n", name));
            delete.ExecuteNonQuery();
            Changed();
            ThingDeleted?.Invoke(name);
            ThingChanged?.Invoke(name);
            return null;
        }
    }

    private ThingRecord? ReadThing(SqliteConnection connection, string name)
    {
        using var command = Command(connection, "SELECT name, id, type_name, attributes, version FROM things WHERE name = $n", ("$n", name));
        using var reader = command.ExecuteReader();
        return reader.Read() ? MapThing(reader) : null;
    }

    private ThingRecord MapThing(SqliteDataReader reader)
    {
        var attributes = JsonSerializer.Deserialize(reader.GetString(3), RegistryJsonContext.Default.IReadOnlyDictionaryStringString) ?? new Dictionary<string, string>();
        return new ThingRecord(reader.GetString(0), reader.GetString(1), Options.Arn("thing/" + reader.GetString(0)), reader.IsDBNull(2) ? null : reader.GetString(2), attributes, reader.GetInt64(4));
    }

    private static TrellisError NotFoundThing(string name) => new TrellisError.NotFound($"Thing {name} cannot be found.");

    private static TrellisError? ValidateAttributes(IReadOnlyDictionary<string, string>? attributes)
    {
        if (attributes is null)
        {
            return null;
        }

        if (attributes.Count > MaxAttributes)
        {
            return new TrellisError.InvalidRequest($"A thing may have at most {MaxAttributes} attributes.");
        }

        foreach (var (key, value) in attributes)
        {
            if (!AttributeNamePattern().IsMatch(key))
            {
                return new TrellisError.InvalidRequest($"Attribute name '{key}' is invalid: 1-128 characters from a-z A-Z 0-9 _ . , @ / : # = [ ] -");
            }

            if (!AttributeValuePattern().IsMatch(value))
            {
                return new TrellisError.InvalidRequest($"Attribute value for '{key}' is invalid: at most 800 characters from a-z A-Z 0-9 _ . , @ / : # = [ ] -");
            }
        }

        return null;
    }

    private static bool SameAttributes(IReadOnlyDictionary<string, string> a, IReadOnlyDictionary<string, string>? b) =>
        a.Count == (b?.Count ?? 0) && (b is null || b.All(kv => a.TryGetValue(kv.Key, out var v) && v == kv.Value));

    private static string EscapeLike(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("%", "\\%", StringComparison.Ordinal).Replace("_", "\\_", StringComparison.Ordinal);
}
