namespace Trellis.Security.SigV4;

/// <summary>The parts of an HTTP request that SigV4 signs, as received.</summary>
public sealed record SigV4Request(
    string Method,
    string RawPath,
    string RawQuery,
    IReadOnlyDictionary<string, string> Headers,
    ReadOnlyMemory<byte> Body);
