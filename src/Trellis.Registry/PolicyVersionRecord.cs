namespace Trellis.Registry;

/// <summary>One version of a policy.</summary>
public sealed record PolicyVersionRecord(string PolicyName, string VersionId, string Document, bool IsDefault, long CreatedMs);
