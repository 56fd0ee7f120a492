namespace Trellis.Shadows;

/// <summary>Shadow limits. The defaults are AWS IoT's.</summary>
public sealed class ShadowOptions
{
    /// <summary>Largest request payload, and largest state document (desired + reported, without metadata).</summary>
    public int MaxDocumentBytes { get; set; } = 8 * 1024;

    /// <summary>Levels of keys allowed inside <c>desired</c> or <c>reported</c>: <c>{"a":{"b":1}}</c> is 2.</summary>
    public int MaxDepth { get; set; } = 6;

    /// <summary>Update requests per second per thing (all its shadows together); more get 429.</summary>
    public int MaxUpdatesPerSecondPerThing { get; set; } = 20;

    /// <summary>Longest <c>clientToken</c>, in UTF-8 bytes.</summary>
    public int MaxClientTokenBytes { get; set; } = 64;

    /// <summary>Longest shadow name (a thing name is at most 128 characters, as in the registry).</summary>
    public int MaxShadowNameLength { get; set; } = 64;
}
