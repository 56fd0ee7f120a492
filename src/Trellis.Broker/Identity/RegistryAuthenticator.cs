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
/// must be registered and ACTIVE; its attached policies apply), API access keys as user name and
/// password on the plain listeners, and anonymous clients only in development mode.
/// </summary>
public sealed class RegistryAuthenticator(RegistryService registry, AccessKeys accessKeys, IOptions<BrokerOptions> options) : IBrokerAuthenticator
{
    private readonly BrokerOptions _options = options.Value;
    private CompiledPolicySet? _allowAll;

    /// <summary>One shared allow-all set: anonymous and access-key clients hold no policy copy each.</summary>
    private CompiledPolicySet AllowAll => _allowAll ??= CompiledPolicySet.AllowAll(_options.Region, _options.AccountId);

    public long PolicyGeneration => registry.PolicyGeneration;

    public AuthenticationResult Authenticate(ConnectRequest request)
    {
        if (request.ClientCertificate is { } certificate)
        {
            return AuthenticateCertificate(request, certificate);
        }

        if (request.IsTls)
        {
            return AuthenticationResult.Deny(ReasonCode.NotAuthorized, "the TLS listener needs a client certificate issued by the Trellis CA");
        }

        if (request.UserName is { } user)
        {
            if (accessKeys.Verify(user, request.Password))
            {
                // An API access key is an operator's identity: full access, still evaluated per operation.
                return AuthenticationResult.Allow(new ClientPrincipal(AllowAll, 0)
                {
                    PrincipalIdentifier = user,
                });
            }

            return AuthenticationResult.Deny(ReasonCode.BadUserNameOrPassword, $"unknown user name '{user}' or wrong password");
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
        var record = registry.FindCertificate(id);
        if (record is null)
        {
            return AuthenticationResult.Deny(ReasonCode.NotAuthorized, $"certificate {id} is not registered with this server");
        }

        if (record.Status != CertificateStatus.Active)
        {
            return AuthenticationResult.Deny(ReasonCode.NotAuthorized, $"certificate {id} is {record.Status}; activate it with UpdateCertificate or issue a new one");
        }

        var generation = registry.PolicyGeneration;
        var thing = registry.ThingForConnection(record.Arn, request.ClientId);
        var principal = new ClientPrincipal(Compile(record.Arn, certificate, request.ClientId, thing), generation)
        {
            CertificateId = id,
            ThingName = thing?.Name,
            PrincipalIdentifier = id,
            Recompile = () => Compile(record.Arn, certificate, request.ClientId, registry.ThingForConnection(record.Arn, request.ClientId)),
        };
        return AuthenticationResult.Allow(principal);
    }

    private CompiledPolicySet Compile(string certificateArn, X509Certificate2 certificate, string clientId, ThingRecord? thing)
    {
        var variables = new PolicyVariables { ["iot:ClientId"] = clientId };
        CertificateVariables.Fill(variables, certificate);
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

        // The certificate's policies, and those of the thing's groups and their ancestors.
        List<string> targets = [certificateArn];
        if (thing is not null)
        {
            targets.AddRange(registry.PolicyGroupArnsFor(thing.Name));
        }

        return CompiledPolicySet.Compile(registry.PoliciesFor(targets), variables, _options.Region, _options.AccountId);
    }
}
