namespace Trellis.Registry;

/// <summary>How resources are named: the region and account that appear in ARNs.</summary>
public sealed class RegistryOptions
{
    /// <summary>Region used in ARNs (any region is accepted in requests).</summary>
    public string Region { get; set; } = "us-east-1";

    /// <summary>12-digit account id used in ARNs.</summary>
    public string AccountId { get; set; } = "000000000000";

    public string Arn(string resource) => $"arn:aws:iot:{Region}:{AccountId}:{resource}";
}
