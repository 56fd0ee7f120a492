namespace Trellis.Security.Policies;

/// <summary>One statement of a policy document, with its action patterns and resource patterns as written.</summary>
public sealed record PolicyStatement(bool Allow, IReadOnlyList<string> Actions, IReadOnlyList<string> Resources);
