using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Options;
using Trellis.Broker.Protocol;
using Trellis.Registry;
using Trellis.Security.Pki;
using Trellis.Security.Policies;

namespace Trellis.Broker.Identity;

/// <summary>
/// Authenticates MQTT clients against the registry: device certificates on TLS (the certificate
/// must be registered and ACTIVE; its attached policies apply), API access keys or a thing's name and
/// device token as user name and password on the plain listeners, and anonymous clients only in
/// development mode.
/// </summary>
public sealed class RegistryAuthenticator(RegistryService registry, ApiUsers users, IOptions<BrokerOptions> options) : IBrokerAuthenticator
{
    /// <summary>Grants kept at most; past it the cache starts over (a connect then reads the registry again).</summary>
    private const int MaxCachedGrants = 100_000;

    private readonly BrokerOptions _options = options.Value;

    /// <summary>
    /// What a certificate's connect with a client id was granted, while the registry has not changed
    /// since (<see cref="RegistryService.PolicyGeneration"/> moves with every write that could change
    /// it: a certificate's status, attachments, policies, the thing and its groups). A device that
    /// reconnects then costs a dictionary lookup instead of three registry queries and a policy
    /// compilation.
    /// </summary>
    private readonly ConcurrentDictionary<(string CertificateId, string ClientId), CertificateGrant> _grants = new();
    private CompiledPolicySet? _allowAll;

    private CompiledPolicySet? _readOnly;

    /// <summary>Viewer keys on MQTT: connect, subscribe and receive anything; publish nothing.</summary>
    private CompiledPolicySet ReadOnly => _readOnly ??= CompiledPolicySet.Compile(
        [PolicyDocument.TryParse("""{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iot:Connect","iot:Subscribe","iot:Receive"],"Resource":"*"}]}""", out var document, out _) ? document! : throw new InvalidOperationException("read-only policy")],
        new PolicyVariables(), _options.Region, _options.AccountId);

    /// <summary>One shared allow-all set: anonymous and access-key clients hold no policy copy each.</summary>
    private CompiledPolicySet AllowAll => _allowAll ??= CompiledPolicySet.AllowAll(_options.Region, _options.AccountId);

    public long PolicyGeneration => registry.PolicyGeneration;

    public AuthenticationResult Authenticate(ConnectRequest request)
    {
        if (request.ClientCertificate is { } certificate)
        {
            return AuthenticateCertificate(request, certificate);
        }

        if (request.IsTls && request.VerifiedUser is null) // the console's socket over HTTPS is a signed-in user, not a device
        {
            return AuthenticationResult.Deny(ReasonCode.NotAuthorized, "the TLS listener needs a client certificate issued by the Trellis CA or a registered CA");
        }

        if (request.VerifiedUser is { } verified && users.RoleOf(verified) is null)
        {
            return AuthenticationResult.Deny(ReasonCode.NotAuthorized, $"API key '{verified}' of the console session was deleted or rotated: sign in again");
        }

        if ((request.VerifiedUser ?? request.UserName) is { } user)
        {
            if (request.VerifiedUser is not null ? users.RoleOf(user) is not null : users.Verify(user, request.Password))
            {
                // An API access key is a person's or service's identity, never a device's: admin and
                // operator keys may publish, subscribe and receive on any topic, viewer keys only
                // subscribe and receive. None may use a registered thing's name as its client id
                // (unless Broker:OperatorsMayUseThingClientIds says so), and none takes over or
                // resumes a device's session (MqttBroker.OperatorConflict).
                var role = users.RoleOf(user) ?? ApiRoles.Viewer;
                if (!_options.OperatorsMayUseThingClientIds && registry.DescribeThing(request.ClientId).IsSuccess)
                {
                    return AuthenticationResult.Deny(ReasonCode.NotAuthorized,
                        $"client id '{request.ClientId}' is the name of a registered thing: API keys may not connect as a device; use a client id of your own");
                }

                return AuthenticationResult.Allow(new ClientPrincipal(role == ApiRoles.Viewer ? ReadOnly : AllowAll, 0)
                {
                    PrincipalIdentifier = user,
                    OperatorRole = role,
                });
            }

            if (registry.VerifyDeviceToken(user, request.Password) is { } token)
            {
                return AuthenticateToken(request, token);
            }

            return AuthenticationResult.Deny(ReasonCode.BadUserNameOrPassword, $"unknown user name '{user}' or wrong password (a device token is only accepted with its thing's name as user name, while it is active)");
        }

        if (_options.AllowAnonymous)
        {
            return AuthenticationResult.Allow(AnonymousPrincipal());
        }

        return AuthenticationResult.Deny(ReasonCode.NotAuthorized,
            "anonymous clients are not allowed: connect over TLS with a device certificate (or a user name and password); start the server with --allow-anonymous only for development");
    }

    public ClientPrincipal RestoredPrincipal(string clientId) => AnonymousPrincipal();

    private ClientPrincipal AnonymousPrincipal() =>
        new(AllowAll, 0) { PrincipalIdentifier = "anonymous" };

    private AuthenticationResult AuthenticateCertificate(ConnectRequest request, X509Certificate2 certificate)
    {
        var id = CertificateAuthority.CertificateId(certificate);
        var generation = registry.PolicyGeneration;
        if (_grants.TryGetValue((id, request.ClientId), out var grant) && grant.Generation == generation)
        {
            return AuthenticationResult.Allow(CertificatePrincipal(grant.Arn, id, certificate, request.ClientId, grant.Thing, grant.Policies, generation));
        }

        var record = registry.FindCertificate(id);
        if (record is null)
        {
            // First connect of a certificate from a registered CA: JITP or auto-registration.
            var registered = registry.AutoRegister(certificate);
            if (!registered.IsSuccess)
            {
                return AuthenticationResult.Deny(ReasonCode.NotAuthorized, registered.Error!.Message);
            }

            record = registered.Value!;
        }

        if (record.Status != CertificateStatus.Active)
        {
            return AuthenticationResult.Deny(ReasonCode.NotAuthorized, record.Status == CertificateStatus.PendingActivation
                ? $"certificate {id} is PENDING_ACTIVATION: it registered itself through its CA; activate it with UpdateCertificate (or give the CA a JITP template)"
                : $"certificate {id} is {record.Status}; activate it with UpdateCertificate or issue a new one");
        }

        var thing = registry.ThingForConnection(record.Arn, request.ClientId);
        var policies = Compile(record.Arn, certificate, request.ClientId, thing);
        if (_grants.Count >= MaxCachedGrants)
        {
            _grants.Clear();
        }

        // Read after the generation was taken: a change meanwhile leaves this entry stale, never wrong.
        _grants[(id, request.ClientId)] = new CertificateGrant(generation, record.Arn, thing, policies);
        return AuthenticationResult.Allow(CertificatePrincipal(record.Arn, id, certificate, request.ClientId, thing, policies, generation));
    }

    private ClientPrincipal CertificatePrincipal(string arn, string id, X509Certificate2 certificate, string clientId, ThingRecord? thing, CompiledPolicySet policies, long generation) =>
        new(policies, generation)
        {
            CertificateId = id,
            ThingName = thing?.Name,
            PrincipalIdentifier = id,
            Recompile = () => Compile(arn, certificate, clientId, registry.ThingForConnection(arn, clientId)),
        };

    /// <summary>
    /// A device token: the thing is the connection's thing when the client id is the thing's name
    /// (as with certificates); the token's own policies and the thing's group policies apply.
    /// </summary>
    private AuthenticationResult AuthenticateToken(ConnectRequest request, DeviceTokenRecord token)
    {
        var generation = registry.PolicyGeneration;
        ThingRecord? ThingNow() => request.ClientId == token.ThingName ? registry.ThingForPolicy(token.ThingName)?.Thing : null;
        var thing = ThingNow();
        var principal = new ClientPrincipal(Compile(token.Arn, null, request.ClientId, thing), generation)
        {
            TokenId = token.Id,
            ThingName = thing?.Name,
            PrincipalIdentifier = token.Id,
            Recompile = () => Compile(token.Arn, null, request.ClientId, ThingNow()),
        };
        return AuthenticationResult.Allow(principal);
    }

    private CompiledPolicySet Compile(string principalArn, X509Certificate2? certificate, string clientId, ThingRecord? thing)
    {
        var variables = new PolicyVariables { ["iot:ClientId"] = clientId };
        if (certificate is not null)
        {
            CertificateVariables.Fill(variables, certificate);
        }

        if (thing is not null)
        {
            variables["iot:Connection.Thing.ThingName"] = thing.Name;
            variables["iot:Connection.Thing.IsAttached"] = "true";
            if (thing.TypeName is not null)
            {
                variables["iot:Connection.Thing.ThingTypeName"] = thing.TypeName;
            }

            foreach (var (name, value) in thing.Attributes)
            {
                variables[string.Create(CultureInfo.InvariantCulture, $"iot:Connection.Thing.Attributes[{name}]")] = value;
            }
        }
        else
        {
            variables["iot:Connection.Thing.IsAttached"] = "false";
        }

        // The principal's (certificate's or token's) policies, and those of the thing's groups and their ancestors.
        List<string> targets = [principalArn];
        if (thing is not null)
        {
            targets.AddRange(registry.ThingForPolicy(thing.Name)?.GroupArns ?? registry.PolicyGroupArnsFor(thing.Name));
        }

        return CompiledPolicySet.Compile(registry.PoliciesFor(targets), variables, _options.Region, _options.AccountId);
    }

    private sealed record CertificateGrant(long Generation, string Arn, ThingRecord? Thing, CompiledPolicySet Policies);
}
