using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Trellis.Core.Errors;
using Trellis.Registry.Provisioning;
using Trellis.Security.Pki;

namespace Trellis.Registry;

/// <summary>
/// Applying provisioning templates (fleet provisioning, JITP, RegisterThing) and the certificate
/// ownership tokens of fleet provisioning by claim.
/// </summary>
public sealed partial class RegistryService
{
    /// <summary>
    /// Applies a template. Everything that can be refused (parameters, thing type, groups, policies,
    /// the certificate) is checked before anything is written. <paramref name="presented"/> is a
    /// certificate to register when the template names it (JITP), issued by <paramref name="presentedCaId"/>.
    /// </summary>
    public Result<ProvisioningOutcome> ApplyTemplate(
        string templateName, TemplateDocument template, IReadOnlyDictionary<string, string> parameters, X509Certificate2? presented = null, string? presentedCaId = null)
    {
        var resolution = template.Resolve(parameters);
        if (!resolution.IsSuccess)
        {
            return new TrellisError.InvalidRequest($"Template '{templateName}': {resolution.Error!.Message}");
        }

        var resolved = resolution.Value!;
        lock (_writeLock)
        {
            if (Precheck(templateName, resolved, presented) is { } refused)
            {
                return refused;
            }

            var arns = new Dictionary<string, string>(StringComparer.Ordinal);
            var policyNames = new List<string>();
            foreach (var policy in resolved.Policies)
            {
                var name = policy.Name ?? GeneratedPolicyName(templateName, policy);
                if (policy.Name is null && GetPolicy(name) is { IsSuccess: false } && CreatePolicy(name, policy.Document) is { IsSuccess: false } created)
                {
                    return created.Error!;
                }

                policyNames.Add(name);
                arns["policy"] = Options.Arn("policy/" + name);
            }

            ThingRecord? thing = null;
            if (resolved.Thing is { } thingSpec)
            {
                var applied = ApplyThing(thingSpec);
                if (!applied.IsSuccess)
                {
                    return applied.Error!;
                }

                thing = applied.Value!;
                arns["thing"] = thing.Arn;
            }

            CertificateRecord? certificate = null;
            if (resolved.Certificate is { } certificateSpec)
            {
                var applied = ApplyCertificate(certificateSpec, presented, presentedCaId);
                if (!applied.IsSuccess)
                {
                    return applied.Error!;
                }

                certificate = applied.Value!;
                arns["certificate"] = certificate.Arn;
                foreach (var policy in policyNames)
                {
                    if (AttachPolicy(policy, certificate.Arn) is { } error)
                    {
                        return error;
                    }
                }

                if (thing is not null && AttachThingPrincipal(thing.Name, certificate.Arn, exclusive: false) is { } attachError)
                {
                    return attachError;
                }
            }

            return new ProvisioningOutcome(thing?.Name, certificate, resolved.DeviceConfiguration, arns);
        }
    }

    /// <summary>
    /// JITP and auto-registration on first connect of an unregistered certificate issued by a
    /// registered CA: with the CA's JITP template, the template runs and the certificate comes out
    /// as the template says (normally ACTIVE, with its thing and policy); without one, it is
    /// registered as PENDING_ACTIVATION and announced. The error explains a refusal.
    /// </summary>
    public Result<CertificateRecord> AutoRegister(X509Certificate2 certificate)
    {
        var id = CertificateAuthority.CertificateId(certificate);
        if (IssuingCa(certificate) is not { } ca)
        {
            return new TrellisError.NotFound($"certificate {id} is not registered with this server, and its issuer is not a registered CA");
        }

        if (!ca.IsActive)
        {
            return new TrellisError.CertificateState($"certificate {id} is not registered, and its CA {ca.Id} is INACTIVE");
        }

        if (!ca.AutoRegistration)
        {
            return new TrellisError.CertificateState($"certificate {id} is not registered, and auto-registration is off for its CA {ca.Id}: register it (RegisterCertificate) or enable auto-registration (UpdateCACertificate)");
        }

        if (ValidityError(certificate, "the certificate") is { } expired)
        {
            return expired;
        }

        var templateBody = ca.RegistrationConfig?.TemplateBody;
        var templateName = "jitp-" + ca.Id[..12];
        if (ca.RegistrationConfig?.TemplateName is { } name)
        {
            var template = DescribeProvisioningTemplate(name);
            if (!template.IsSuccess || !template.Value!.Enabled)
            {
                return new TrellisError.InvalidRequest($"the JITP template '{name}' of CA {ca.Id} does not exist or is disabled");
            }

            templateBody = template.Value.Body;
            templateName = name;
        }

        if (templateBody is null)
        {
            return AutoRegisterPending(certificate, ca);
        }

        var document = TemplateDocument.Parse(templateBody);
        if (!document.IsSuccess)
        {
            return document.Error!;
        }

        var parameters = new Dictionary<string, string>(StringComparer.Ordinal) { [TemplateDocument.CertificateIdParameter] = id };
        foreach (var (field, value) in CertificateVariables.SubjectFields(certificate))
        {
            parameters["AWS::IoT::Certificate::" + (field == "State" ? "StateName" : field)] = value;
        }

        var outcome = ApplyTemplate(templateName, document.Value!, parameters, certificate, ca.Id);
        if (!outcome.IsSuccess)
        {
            // A concurrent first connect of the same device provisioned it first.
            return FindCertificate(id) is { } existing ? existing : outcome.Error!;
        }

        return outcome.Value!.Certificate ?? FindCertificate(id) ?? (Result<CertificateRecord>)new TrellisError.InvalidRequest(
            $"the JITP template '{templateName}' has no AWS::IoT::Certificate resource, so certificate {id} was not registered");
    }

    /// <summary>A certificate for fleet provisioning by claim: PENDING_ACTIVATION, with an ownership token valid for <paramref name="lifetime"/>.</summary>
    public Result<(NewCertificate Certificate, string OwnershipToken)> CreateClaimedCertificate(string? csrPem, TimeSpan lifetime)
    {
        NewCertificate created;
        if (csrPem is null)
        {
            created = CreateKeysAndCertificate(CertificateStatus.PendingActivation);
        }
        else
        {
            var fromCsr = CreateCertificateFromCsr(csrPem, CertificateStatus.PendingActivation);
            if (!fromCsr.IsSuccess)
            {
                return fromCsr.Error!;
            }

            created = fromCsr.Value!;
        }

        var token = Base64Url(RandomNumberGenerator.GetBytes(32));
        lock (_writeLock)
        {
            using var connection = _db.Open();
            using var insert = Command(connection, "INSERT INTO ownership_tokens(hash, certificate_id, expires_ms) VALUES ($h, $c, $e)",
                ("$h", TokenHash(token)), ("$c", created.Certificate.Id), ("$e", NowMs + (long)lifetime.TotalMilliseconds));
            insert.ExecuteNonQuery();
        }

        return (created, token);
    }

    /// <summary>The certificate an ownership token stands for, while it is valid.</summary>
    public Result<CertificateRecord> CertificateForOwnershipToken(string token)
    {
        using var connection = _db.Open();
        using var command = Command(connection, "SELECT certificate_id, expires_ms FROM ownership_tokens WHERE hash = $h", ("$h", TokenHash(token)));
        using var reader = command.ExecuteReader();
        if (!reader.Read())
        {
            return new TrellisError.InvalidRequest("The certificate ownership token is not valid: it is unknown, or was already used. Create a new certificate.");
        }

        if (reader.GetInt64(1) < NowMs)
        {
            return new TrellisError.InvalidRequest("The certificate ownership token has expired (its unprovisioned certificate is deleted): create a new certificate and register within the token's lifetime (one hour by default).");
        }

        return ReadCertificate(connection, reader.GetString(0)) is { } certificate
            ? certificate
            : new TrellisError.InvalidRequest("The certificate of this ownership token no longer exists. Create a new certificate.");
    }

    /// <summary>Spends an ownership token once its certificate is provisioned.</summary>
    public void ConsumeOwnershipToken(string token)
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            using var delete = Command(connection, "DELETE FROM ownership_tokens WHERE hash = $h", ("$h", TokenHash(token)));
            delete.ExecuteNonQuery();
        }
    }

    /// <summary>
    /// Deletes the certificates of expired ownership tokens that were never provisioned (still
    /// PENDING_ACTIVATION and attached to nothing), as AWS does after an hour, and tokens a day past
    /// their expiry. Returns how many certificates went.
    /// </summary>
    public int SweepExpiredClaims()
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            using var transaction = connection.BeginTransaction();
            using var sweep = Command(connection,
                "DELETE FROM certificates WHERE status = $pending AND id IN (SELECT certificate_id FROM ownership_tokens WHERE expires_ms < $now) " +
                "AND NOT EXISTS (SELECT 1 FROM thing_principals p WHERE p.principal = $prefix || certificates.id) " +
                "AND NOT EXISTS (SELECT 1 FROM policy_targets t WHERE t.target = $prefix || certificates.id); " +
                "SELECT changes(); ",
                ("$pending", CertificateStatus.PendingActivation), ("$now", NowMs), ("$prefix", Options.Arn("cert/")));
            sweep.Transaction = transaction;
            var deleted = Convert.ToInt32(sweep.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
            // Expired tokens stay a day longer, so that a late device hears "expired" rather than "unknown".
            using var tokens = Command(connection, "DELETE FROM ownership_tokens WHERE expires_ms < $cutoff", ("$cutoff", NowMs - (long)TimeSpan.FromDays(1).TotalMilliseconds));
            tokens.Transaction = transaction;
            tokens.ExecuteNonQuery();
            transaction.Commit();
            return deleted;
        }
    }

    private TrellisError? Precheck(string templateName, ResolvedTemplate resolved, X509Certificate2? presented)
    {
        using var connection = _db.Open();
        if (resolved.Thing is { } thing)
        {
            if (ValidateThingName(thing.Name) is { } badName)
            {
                return badName;
            }

            if (thing.TypeName is not null && ValidateTypeForThing(connection, thing.TypeName) is { } badType)
            {
                return badType;
            }

            foreach (var group in thing.Groups ?? [])
            {
                if (DescribeThingGroup(group) is { IsSuccess: false })
                {
                    return new TrellisError.InvalidRequest($"Template '{templateName}': the thing group '{group}' does not exist.");
                }
            }
        }

        foreach (var policy in resolved.Policies)
        {
            if (policy.Name is { } name && ReadPolicy(connection, name) is null && policy.Document is null)
            {
                return new TrellisError.InvalidRequest($"Template '{templateName}': the policy '{name}' does not exist.");
            }

            if (policy.Document is not null && ParseDocument(policy.Document) is { Error: { } error })
            {
                return new TrellisError.InvalidRequest($"Template '{templateName}': Resources.{policy.LogicalId}.Properties.PolicyDocument: {error.Message}");
            }
        }

        if (resolved.Certificate is { } certificate)
        {
            if (certificate.Status is not (null or CertificateStatus.Active or CertificateStatus.Inactive))
            {
                return new TrellisError.InvalidRequest($"Template '{templateName}': Resources.{certificate.LogicalId}.Properties.Status must be Active or Inactive.");
            }

            if (certificate.CertificateId is { } id && ReadCertificate(connection, id.ToLowerInvariant()) is null
                && (presented is null || !string.Equals(CertificateAuthority.CertificateId(presented), id, StringComparison.OrdinalIgnoreCase)))
            {
                return new TrellisError.InvalidRequest($"Template '{templateName}': the certificate {id} does not exist.");
            }
        }

        return null;
    }

    private Result<ThingRecord> ApplyThing(ThingSpec spec)
    {
        if (DescribeThing(spec.Name) is not { IsSuccess: true } found)
        {
            var created = CreateThing(spec.Name, spec.TypeName, spec.Attributes);
            if (!created.IsSuccess)
            {
                return created.Error!;
            }

            foreach (var group in spec.Groups ?? [])
            {
                if (AddThingToThingGroup(group, null, spec.Name, null) is { } error)
                {
                    return error;
                }
            }

            return created.Value!;
        }

        // The thing exists: OverrideSettings decide (absent means DO_NOTHING).
        var thing = found.Value!;
        if (spec.Attributes is not null && spec.AttributeOverride is "MERGE" or "REPLACE" or "FAIL")
        {
            if (spec.AttributeOverride == "FAIL" && !SameAttributes(thing.Attributes, spec.Attributes))
            {
                return new TrellisError.ResourceRegistrationFailure($"Thing '{spec.Name}' exists with other attributes, and OverrideSettings.AttributePayload is FAIL.");
            }

            var updated = UpdateThing(spec.Name, null, false, spec.Attributes.ToDictionary(a => a.Key, a => (string?)a.Value), spec.AttributeOverride == "MERGE", null);
            if (!updated.IsSuccess)
            {
                return updated.Error!;
            }

            thing = updated.Value!;
        }

        if (spec.TypeName is not null && spec.TypeName != thing.TypeName && spec.TypeOverride is "REPLACE" or "FAIL")
        {
            if (spec.TypeOverride == "FAIL")
            {
                return new TrellisError.ResourceRegistrationFailure($"Thing '{spec.Name}' exists with type '{thing.TypeName}', and OverrideSettings.ThingTypeName is FAIL.");
            }

            var updated = UpdateThing(spec.Name, spec.TypeName, false, null, true, null);
            if (!updated.IsSuccess)
            {
                return updated.Error!;
            }

            thing = updated.Value!;
        }

        if (spec.Groups is not null && spec.GroupsOverride is "MERGE" or "REPLACE" or "FAIL")
        {
            var current = ListThingGroupsForThing(spec.Name, null, 250).Value!.Items.Select(g => g.Name).ToHashSet(StringComparer.Ordinal);
            if (spec.GroupsOverride == "FAIL" && !current.SetEquals(spec.Groups))
            {
                return new TrellisError.ResourceRegistrationFailure($"Thing '{spec.Name}' is in other groups, and OverrideSettings.ThingGroups is FAIL.");
            }

            if (spec.GroupsOverride == "REPLACE")
            {
                foreach (var group in current.Except(spec.Groups))
                {
                    RemoveThingFromThingGroup(group, null, spec.Name, null);
                }
            }

            foreach (var group in spec.Groups.Except(current))
            {
                if (AddThingToThingGroup(group, null, spec.Name, null) is { } error)
                {
                    return error;
                }
            }
        }

        return thing;
    }

    private Result<CertificateRecord> ApplyCertificate(CertificateSpec spec, X509Certificate2? presented, string? presentedCaId)
    {
        var status = spec.Status ?? CertificateStatus.Active;
        if (spec.CertificateId is { } id)
        {
            id = id.ToLowerInvariant();
            if (FindCertificate(id) is null && presented is not null && CertificateAuthority.CertificateId(presented) == id)
            {
                return StoreRegistered(presented, status, presentedCaId);
            }

            if (UpdateCertificate(id, status) is { } error)
            {
                return error;
            }

            return FindCertificate(id)!;
        }

        if (spec.SigningRequest is { } csr)
        {
            var issued = CreateCertificateFromCsr(csr, status);
            return issued.IsSuccess ? issued.Value!.Certificate : issued.Error!;
        }

        var registered = RegisterCertificate(spec.CertificatePem, spec.CaCertificatePem, false, status);
        if (registered.Error is TrellisError.AlreadyExists)
        {
            using var existing = X509Certificate2.CreateFromPem(spec.CertificatePem!);
            var existingId = CertificateAuthority.CertificateId(existing);
            return UpdateCertificate(existingId, status) is { } error ? error : FindCertificate(existingId)!;
        }

        return registered;
    }

    private static string GeneratedPolicyName(string templateName, PolicySpec policy) =>
        $"{templateName}_{policy.LogicalId}_{Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(policy.Document ?? string.Empty)))[..12]}";

    private static string TokenHash(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));
}
