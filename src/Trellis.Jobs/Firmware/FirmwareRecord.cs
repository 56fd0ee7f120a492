namespace Trellis.Jobs.Firmware;

/// <summary>A firmware image: its name, the SHA-256 of its bytes (where it is stored), its size.</summary>
public sealed record FirmwareRecord(string Name, string Sha256, long Size, string? Description, long CreatedMs);
