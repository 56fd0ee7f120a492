namespace Trellis.Registry;

/// <summary>Certificate statuses (AWS IoT's CertificateStatus enum). Stored in the database: never rename.</summary>
public static class CertificateStatus
{
    public const string Active = "ACTIVE";
    public const string Inactive = "INACTIVE";
    public const string Revoked = "REVOKED";
    public const string PendingTransfer = "PENDING_TRANSFER";
    public const string RegisterInactive = "REGISTER_INACTIVE";
    public const string PendingActivation = "PENDING_ACTIVATION";

    public static IReadOnlyList<string> All { get; } = [Active, Inactive, Revoked, PendingTransfer, RegisterInactive, PendingActivation];
}
