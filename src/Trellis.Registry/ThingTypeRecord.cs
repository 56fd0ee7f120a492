namespace Trellis.Registry;

/// <summary>A thing type: a description and searchable attribute names shared by things of one kind.</summary>
public sealed record ThingTypeRecord(string Name, string Id, string Arn, string? Description, IReadOnlyList<string> SearchableAttributes, bool Deprecated, long? DeprecatedMs, long CreatedMs);

/// <summary>A thing group; <see cref="Ancestors"/> runs from the root down to the parent.</summary>
public sealed record ThingGroupRecord(string Name, string Id, string Arn, string? Parent, string? Description, IReadOnlyDictionary<string, string> Attributes, long Version, long CreatedMs, IReadOnlyList<string> Ancestors, string? QueryString = null, string? QueryVersion = null, string? IndexName = null)
{
    /// <summary>A dynamic group: its members are the things its fleet-index query matches.</summary>
    public bool IsDynamic => QueryString is not null;
}
