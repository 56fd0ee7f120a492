namespace Trellis.Registry;

/// <summary>A thing as stored in the registry.</summary>
public sealed record ThingRecord(string Name, string Id, string Arn, string? TypeName, IReadOnlyDictionary<string, string> Attributes, long Version);
