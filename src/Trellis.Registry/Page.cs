namespace Trellis.Registry;

/// <summary>One page of a listing and the opaque token for the next page (null when done).</summary>
public sealed record Page<T>(IReadOnlyList<T> Items, string? NextToken);
