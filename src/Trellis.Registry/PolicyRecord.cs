namespace Trellis.Registry;

/// <summary>A named policy with its default version's document.</summary>
public sealed record PolicyRecord(string Name, string Arn, string DefaultVersionId, string Document, long CreatedMs, long UpdatedMs);
