using Trellis.Security.Policies;

namespace Trellis.Broker;

/// <summary>
/// Who a connection is: its certificate and thing (if any) and the policies that apply, compiled.
/// The policy set is refreshed when the registry's policy generation moves on.
/// </summary>
public sealed class ClientPrincipal
{
    private CompiledPolicySet _policy;

    public ClientPrincipal(CompiledPolicySet policy, long generation)
    {
        _policy = policy;
        Generation = generation;
    }

    public string? CertificateId { get; init; }

    public string? ThingName { get; init; }

    /// <summary>The device token the client authenticated with, if any.</summary>
    public string? TokenId { get; init; }

    /// <summary>AWS's principalIdentifier for lifecycle events: the certificate id, or the user name.</summary>
    public string PrincipalIdentifier { get; init; } = string.Empty;

    /// <summary>The API role of an operator identity (an API access key used on MQTT); null for devices and anonymous clients.</summary>
    public string? OperatorRole { get; init; }

    /// <summary>Whether this is a person's or service's API key rather than a device.</summary>
    public bool IsOperator => OperatorRole is not null;

    /// <summary>What a persistent session records as its owner: the kind of identity and its id.</summary>
    public string SessionOwner =>
        IsOperator ? "operator:" + PrincipalIdentifier
        : CertificateId is not null ? "certificate:" + CertificateId
        : TokenId is not null ? "token:" + TokenId
        : "anonymous";

    /// <summary>Recompiles the policy set for this principal; null for principals whose policy never changes.</summary>
    public Func<CompiledPolicySet>? Recompile { get; init; }

    public long Generation { get; private set; }

    public CompiledPolicySet Policy => Volatile.Read(ref _policy);

    /// <summary>Swaps in a new policy set. Returns true when it changed.</summary>
    public bool Refresh(long generation)
    {
        if (Recompile is null || generation == Generation)
        {
            return false;
        }

        Volatile.Write(ref _policy, Recompile());
        Generation = generation;
        return true;
    }
}
