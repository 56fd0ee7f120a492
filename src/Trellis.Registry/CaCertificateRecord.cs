namespace Trellis.Registry;

/// <summary>A customer's CA certificate registered with Trellis (bring your own CA).</summary>
public sealed record CaCertificateRecord(
    string Id,
    string Arn,
    string Pem,
    string Status,
    string AutoRegistrationStatus,
    CaRegistrationConfig? RegistrationConfig,
    string Mode,
    long CreatedMs,
    long UpdatedMs)
{
    public bool IsActive => Status == CaCertificateStatus.Active;

    public bool AutoRegistration => AutoRegistrationStatus == CaCertificateStatus.Enable;
}

/// <summary>
/// Just-in-time provisioning for certificates of one CA: a JITP template by name, or a template
/// body inline (AWS's RegistrationConfig).
/// </summary>
public sealed record CaRegistrationConfig(string? TemplateName, string? TemplateBody, string? RoleArn);

/// <summary>AWS's CACertificateStatus, AutoRegistrationStatus and CertificateMode values. Stored: never rename.</summary>
public static class CaCertificateStatus
{
    public const string Active = "ACTIVE";
    public const string Inactive = "INACTIVE";
    public const string Enable = "ENABLE";
    public const string Disable = "DISABLE";
    public const string DefaultMode = "DEFAULT";
    public const string SniOnlyMode = "SNI_ONLY";
}
