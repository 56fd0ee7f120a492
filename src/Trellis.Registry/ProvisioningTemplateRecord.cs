namespace Trellis.Registry;

/// <summary>A provisioning template (fleet provisioning by claim, or JITP) with its default version's body.</summary>
public sealed record ProvisioningTemplateRecord(
    string Name,
    string Arn,
    string? Description,
    bool Enabled,
    string Type,
    string RoleArn,
    ProvisioningHookConfig? Hook,
    int DefaultVersion,
    string Body,
    long CreatedMs,
    long UpdatedMs);

/// <summary>One version of a template's body.</summary>
public sealed record ProvisioningTemplateVersionRecord(int Version, string Body, bool IsDefault, long CreatedMs);

/// <summary>
/// The pre-provisioning hook. AWS calls a Lambda; Trellis POSTs to an HTTP(S) webhook given as
/// <c>targetArn</c>, with the same payload and the same answer shape.
/// </summary>
public sealed record ProvisioningHookConfig(string TargetArn, string? PayloadVersion);

/// <summary>AWS's TemplateType values. Stored: never rename.</summary>
public static class ProvisioningTemplateType
{
    public const string FleetProvisioning = "FLEET_PROVISIONING";
    public const string Jitp = "JITP";
}
