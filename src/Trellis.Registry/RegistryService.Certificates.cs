using System.Security.Cryptography.X509Certificates;
using Microsoft.Data.Sqlite;
using Trellis.Core.Errors;
using Trellis.Security.Pki;

namespace Trellis.Registry;

public sealed partial class RegistryService
{
    public NewCertificate CreateKeysAndCertificate(bool setAsActive) =>
        CreateKeysAndCertificate(setAsActive ? CertificateStatus.Active : CertificateStatus.Inactive);

    public Result<NewCertificate> CreateCertificateFromCsr(string? csrPem, bool setAsActive) =>
        CreateCertificateFromCsr(csrPem, setAsActive ? CertificateStatus.Active : CertificateStatus.Inactive);

    /// <summary>How long a provisioning claim certificate is valid (AWS IoT's five minutes).</summary>
    public static readonly TimeSpan ProvisioningClaimLifetime = TimeSpan.FromMinutes(5);

    /// <summary>
    /// CreateProvisioningClaim: a short-lived (five minutes) ACTIVE certificate with a new key pair,
    /// attached to the policy <c>TrellisProvisioningClaim-{template}</c> (made on first use), which
    /// allows only fleet provisioning with that template: connect, and the
    /// <c>$aws/certificates/create*</c> and <c>$aws/provisioning-templates/{template}/provision</c>
    /// topics. For a trusted user (an installer's app) to hand a device at set-up.
    /// </summary>
    public Result<(NewCertificate Claim, DateTimeOffset Expiration)> CreateProvisioningClaim(string templateName)
    {
        var template = DescribeProvisioningTemplate(templateName);
        if (!template.IsSuccess)
        {
            return template.Error!;
        }

        if (template.Value!.Type != ProvisioningTemplateType.FleetProvisioning)
        {
            return new TrellisError.InvalidRequest($"The provisioning template '{templateName}' is a {template.Value.Type} template; provisioning claims are for FLEET_PROVISIONING templates.");
        }

        var policy = "TrellisProvisioningClaim-" + templateName;
        if (GetPolicy(policy) is { IsSuccess: false })
        {
            var document = $$"""
                {"Version":"2012-10-17","Statement":[
                  {"Effect":"Allow","Action":"iot:Connect","Resource":"*"},
                  {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":["arn:aws:iot:*:*:topic/$aws/certificates/create/*","arn:aws:iot:*:*:topic/$aws/certificates/create-from-csr/*","arn:aws:iot:*:*:topic/$aws/provisioning-templates/{{templateName}}/provision/*"]},
                  {"Effect":"Allow","Action":"iot:Subscribe","Resource":["arn:aws:iot:*:*:topicfilter/$aws/certificates/create/*","arn:aws:iot:*:*:topicfilter/$aws/certificates/create-from-csr/*","arn:aws:iot:*:*:topicfilter/$aws/provisioning-templates/{{templateName}}/provision/*"]}]}
                """;
            var created = CreatePolicy(policy, document);
            if (!created.IsSuccess && created.Error is not TrellisError.AlreadyExists)
            {
                return created.Error!;
            }
        }

        var (certificate, publicKey, privateKey) = _ca.IssueWithNewKey(ProvisioningClaimLifetime);
        using (certificate)
        {
            var record = Store(certificate, CertificateStatus.Active);
            if (AttachPolicy(policy, record.Arn) is { } error)
            {
                return error;
            }

            return (new NewCertificate(record, publicKey, privateKey), new DateTimeOffset(certificate.NotAfter.ToUniversalTime(), TimeSpan.Zero));
        }
    }

    private NewCertificate CreateKeysAndCertificate(string status)
    {
        var (certificate, publicKey, privateKey) = _ca.IssueWithNewKey();
        using (certificate)
        {
            return new NewCertificate(Store(certificate, status), publicKey, privateKey);
        }
    }

    private Result<NewCertificate> CreateCertificateFromCsr(string? csrPem, string status)
    {
        if (string.IsNullOrWhiteSpace(csrPem))
        {
            return new TrellisError.InvalidRequest("certificateSigningRequest is required.");
        }

        if (!_ca.TryIssueFromCsr(csrPem, out var certificate, out var error))
        {
            return new TrellisError.InvalidRequest(error);
        }

        using (certificate)
        {
            return new NewCertificate(Store(certificate!, status), null, null);
        }
    }

    private CertificateRecord Store(X509Certificate2 certificate, string status)
    {
        var id = CertificateAuthority.CertificateId(certificate);
        var now = NowMs;
        lock (_writeLock)
        {
            using var connection = _db.Open();
            using var insert = Command(connection,
                "INSERT INTO certificates(id, pem, status, ca_certificate_id, created_ms, updated_ms) VALUES ($id, $pem, $s, $ca, $ts, $ts)",
                ("$id", id), ("$pem", certificate.ExportCertificatePem() + "\n"), ("$s", status),
                ("$ca", CertificateAuthority.CertificateId(_ca.Certificate)), ("$ts", now));
            insert.ExecuteNonQuery();
            return ReadCertificate(connection, id)!;
        }
    }

    public Result<CertificateRecord> DescribeCertificate(string id)
    {
        if (ValidateCertificateId(id) is { } invalid)
        {
            return invalid;
        }

        using var connection = _db.Open();
        return ReadCertificate(connection, id.ToLowerInvariant()) is { } certificate ? certificate : NotFoundCertificate(id);
    }

    /// <summary>The certificate's record, or null: the broker's lookup at connect.</summary>
    public CertificateRecord? FindCertificate(string id)
    {
        using var connection = _db.Open();
        return ReadCertificate(connection, id);
    }

    public Page<CertificateRecord> ListCertificates(string? marker, int? pageSize, bool ascending)
    {
        using var connection = _db.Open();
        var size = PageSize(pageSize);
        var after = DecodeToken(marker);
        var sql = ascending
            ? "SELECT id, pem, status, ca_certificate_id, created_ms, updated_ms FROM certificates WHERE ($after IS NULL OR (created_ms || ':' || id) > $after) ORDER BY created_ms, id LIMIT $limit"
            : "SELECT id, pem, status, ca_certificate_id, created_ms, updated_ms FROM certificates WHERE ($after IS NULL OR (created_ms || ':' || id) < $after) ORDER BY created_ms DESC, id DESC LIMIT $limit";
        using var command = Command(connection, sql, ("$after", after), ("$limit", size + 1));
        using var reader = command.ExecuteReader();
        var items = new List<CertificateRecord>();
        while (reader.Read())
        {
            items.Add(MapCertificate(reader));
        }

        return ToPage(items, size, c => $"{c.CreatedMs}:{c.Id}");
    }

    public TrellisError? UpdateCertificate(string id, string? newStatus)
    {
        if (ValidateCertificateId(id) is { } invalid)
        {
            return invalid;
        }

        if (newStatus is null || !CertificateStatus.All.Contains(newStatus))
        {
            return new TrellisError.InvalidRequest($"newStatus must be one of {string.Join(", ", CertificateStatus.All)}.");
        }

        if (newStatus is not (CertificateStatus.Active or CertificateStatus.Inactive or CertificateStatus.Revoked))
        {
            return new TrellisError.InvalidRequest($"Status {newStatus} cannot be set with UpdateCertificate here: use ACTIVE, INACTIVE or REVOKED.");
        }

        id = id.ToLowerInvariant();
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadCertificate(connection, id) is not { } certificate)
            {
                return NotFoundCertificate(id);
            }

            if (certificate.Status == CertificateStatus.Revoked && newStatus != CertificateStatus.Revoked)
            {
                return new TrellisError.CertificateState($"Certificate {id} is REVOKED; a revoked certificate cannot be reactivated. Issue a new one.");
            }

            using var update = Command(connection, "UPDATE certificates SET status = $s, updated_ms = $ts WHERE id = $id", ("$s", newStatus), ("$ts", NowMs), ("$id", id));
            update.ExecuteNonQuery();
            Changed();
        }

        CertificateStatusChanged?.Invoke(id, newStatus);
        return null;
    }

    public TrellisError? DeleteCertificate(string id, bool forceDelete)
    {
        if (ValidateCertificateId(id) is { } invalid)
        {
            return invalid;
        }

        id = id.ToLowerInvariant();
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadCertificate(connection, id) is not { } certificate)
            {
                return NotFoundCertificate(id);
            }

            if (certificate.Status == CertificateStatus.Active)
            {
                return new TrellisError.CertificateState($"Certificate {id} is ACTIVE: deactivate it (UpdateCertificate newStatus=INACTIVE) before deleting it.");
            }

            using (var things = Command(connection, "SELECT COUNT(*) FROM thing_principals WHERE principal = $p", ("$p", certificate.Arn)))
            {
                if ((long)things.ExecuteScalar()! > 0)
                {
                    return new TrellisError.DeleteConflict($"Certificate {id} is attached to one or more things: detach it (DetachThingPrincipal) first.");
                }
            }

            var policies = _targetPolicies.TryGetValue(certificate.Arn, out var attached) ? attached.ToList() : [];
            if (policies.Count > 0 && !forceDelete)
            {
                return new TrellisError.DeleteConflict($"Certificate {id} has policies attached ({string.Join(", ", policies)}): detach them or use forceDelete (trellis certs delete --force).");
            }

            using var transaction = connection.BeginTransaction();
            using (var delete = Command(connection, "DELETE FROM policy_targets WHERE target = $t; DELETE FROM certificates WHERE id = $id", ("$t", certificate.Arn), ("$id", id)))
            {
                delete.Transaction = transaction;
                delete.ExecuteNonQuery();
            }

            transaction.Commit();
            _targetPolicies.Remove(certificate.Arn);
            Changed();
            return null;
        }
    }

    /// <summary>Parses a certificate ARN (arn:aws:iot:region:account:cert/ID) to its id, or null.</summary>
    public static string? CertificateIdFromArn(string principal)
    {
        var marker = principal.IndexOf(":cert/", StringComparison.Ordinal);
        return principal.StartsWith("arn:", StringComparison.Ordinal) && marker > 0 ? principal[(marker + 6)..].ToLowerInvariant() : null;
    }

    private CertificateRecord? ReadCertificate(SqliteConnection connection, string id)
    {
        using var command = Command(connection, "SELECT id, pem, status, ca_certificate_id, created_ms, updated_ms FROM certificates WHERE id = $id", ("$id", id));
        using var reader = command.ExecuteReader();
        return reader.Read() ? MapCertificate(reader) : null;
    }

    private CertificateRecord MapCertificate(SqliteDataReader reader) => new(
        reader.GetString(0),
        Options.Arn("cert/" + reader.GetString(0)),
        reader.GetString(1),
        reader.GetString(2),
        reader.IsDBNull(3) ? null : reader.GetString(3),
        reader.GetInt64(4),
        reader.GetInt64(5));

    private static TrellisError? ValidateCertificateId(string id) =>
        id.Length == 64 && id.All(char.IsAsciiHexDigit) ? null : new TrellisError.InvalidRequest($"Certificate id '{id}' is invalid: it is 64 hexadecimal characters.");

    private static TrellisError NotFoundCertificate(string id) => new TrellisError.NotFound($"The certificate {id} does not exist.");
}
