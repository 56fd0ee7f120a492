using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Trellis.Core.Errors;
using Trellis.Security.Pki;

namespace Trellis.Registry;

/// <summary>Bring your own CA: registered CA certificates, the registration code, and device certificates they issued.</summary>
public sealed partial class RegistryService
{
    private const string CaColumns = "id, pem, status, auto_registration, registration_config, mode, created_ms, updated_ms";

    /// <summary>Registered CAs with their parsed certificates, for the TLS handshake and auto-registration (no I/O).</summary>
    private Dictionary<string, (CaCertificateRecord Record, X509Certificate2 Certificate)>? _cas;

    /// <summary>Raised when a certificate registered itself on first connect and waits for activation (the record, its CA's id).</summary>
    public event Action<CertificateRecord, string>? CertificateAutoRegistered;

    /// <summary>The code a verification certificate's common name must carry (GetRegistrationCode); fixed per data folder.</summary>
    public string RegistrationCode()
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            using var read = Command(connection, "SELECT value FROM settings WHERE key = 'registration_code'");
            if (read.ExecuteScalar() is string code)
            {
                return code;
            }

            code = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
            using var insert = Command(connection, "INSERT INTO settings(key, value) VALUES ('registration_code', $v)", ("$v", code));
            insert.ExecuteNonQuery();
            return code;
        }
    }

    public Result<CaCertificateRecord> RegisterCaCertificate(string? caPem, string? verificationPem, bool setAsActive, bool allowAutoRegistration, CaRegistrationConfig? config, string? mode)
    {
        mode ??= CaCertificateStatus.DefaultMode;
        if (mode is not (CaCertificateStatus.DefaultMode or CaCertificateStatus.SniOnlyMode))
        {
            return new TrellisError.InvalidRequest($"certificateMode must be DEFAULT or SNI_ONLY, not '{mode}'.");
        }

        var parsed = ParsePem(caPem, "caCertificate");
        if (!parsed.IsSuccess)
        {
            return parsed.Error!;
        }

        using var ca = parsed.Value!;
        if (!CertificateSignature.IsCertificateAuthority(ca))
        {
            return new TrellisError.CertificateValidation("caCertificate is not a CA certificate: it needs the basicConstraints extension with cA=TRUE.");
        }

        if (ValidityError(ca, "caCertificate") is { } expired)
        {
            return expired;
        }

        if (mode == CaCertificateStatus.DefaultMode)
        {
            if (string.IsNullOrWhiteSpace(verificationPem))
            {
                return new TrellisError.InvalidRequest(
                    "verificationCertificate is required in DEFAULT mode: sign a certificate whose common name is the registration code (GetRegistrationCode) with the CA's private key, to prove you hold it.");
            }

            var verificationParsed = ParsePem(verificationPem, "verificationCertificate");
            if (!verificationParsed.IsSuccess)
            {
                return verificationParsed.Error!;
            }

            using var verification = verificationParsed.Value!;
            var commonName = verification.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
            if (commonName != RegistrationCode())
            {
                return new TrellisError.RegistrationCodeValidation(
                    $"The verification certificate's common name is '{commonName}', not this server's registration code (GetRegistrationCode).");
            }

            if (!CertificateSignature.IsSignedBy(verification, ca))
            {
                return new TrellisError.CertificateValidation("The verification certificate is not signed by the CA certificate's private key.");
            }

            if (ValidityError(verification, "verificationCertificate") is { } verificationExpired)
            {
                return verificationExpired;
            }
        }

        if (ValidateRegistrationConfig(config) is { } badConfig)
        {
            return badConfig;
        }

        var id = CertificateAuthority.CertificateId(ca);
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadCaCertificate(connection, id) is not null)
            {
                return new TrellisError.AlreadyExists($"The CA certificate {id} is already registered.", id, CaArn(id));
            }

            var now = NowMs;
            using var insert = Command(connection,
                $"INSERT INTO ca_certificates({CaColumns}) VALUES ($id, $pem, $s, $auto, $config, $mode, $ts, $ts)",
                ("$id", id), ("$pem", ca.ExportCertificatePem() + "\n"),
                ("$s", setAsActive ? CaCertificateStatus.Active : CaCertificateStatus.Inactive),
                ("$auto", allowAutoRegistration ? CaCertificateStatus.Enable : CaCertificateStatus.Disable),
                ("$config", SerializeConfig(config)), ("$mode", mode), ("$ts", now));
            insert.ExecuteNonQuery();
            _cas = null;
            return ReadCaCertificate(connection, id)!;
        }
    }

    public Result<CaCertificateRecord> DescribeCaCertificate(string id)
    {
        if (ValidateCertificateId(id) is { } invalid)
        {
            return invalid;
        }

        using var connection = _db.Open();
        return ReadCaCertificate(connection, id.ToLowerInvariant()) is { } ca ? ca : NotFoundCa(id);
    }

    public TrellisError? UpdateCaCertificate(string id, string? newStatus, string? newAutoRegistrationStatus, CaRegistrationConfig? config, bool removeAutoRegistration)
    {
        if (ValidateCertificateId(id) is { } invalid)
        {
            return invalid;
        }

        if (newStatus is not (null or CaCertificateStatus.Active or CaCertificateStatus.Inactive))
        {
            return new TrellisError.InvalidRequest($"newStatus must be ACTIVE or INACTIVE, not '{newStatus}'.");
        }

        if (newAutoRegistrationStatus is not (null or CaCertificateStatus.Enable or CaCertificateStatus.Disable))
        {
            return new TrellisError.InvalidRequest($"newAutoRegistrationStatus must be ENABLE or DISABLE, not '{newAutoRegistrationStatus}'.");
        }

        if (ValidateRegistrationConfig(config) is { } badConfig)
        {
            return badConfig;
        }

        id = id.ToLowerInvariant();
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadCaCertificate(connection, id) is not { } ca)
            {
                return NotFoundCa(id);
            }

            var registration = removeAutoRegistration ? null : config ?? ca.RegistrationConfig;
            using var update = Command(connection,
                "UPDATE ca_certificates SET status = $s, auto_registration = $auto, registration_config = $config, updated_ms = $ts WHERE id = $id",
                ("$s", newStatus ?? ca.Status), ("$auto", newAutoRegistrationStatus ?? ca.AutoRegistrationStatus),
                ("$config", SerializeConfig(registration)), ("$ts", NowMs), ("$id", id));
            update.ExecuteNonQuery();
            _cas = null;
            return null;
        }
    }

    public TrellisError? DeleteCaCertificate(string id)
    {
        if (ValidateCertificateId(id) is { } invalid)
        {
            return invalid;
        }

        id = id.ToLowerInvariant();
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadCaCertificate(connection, id) is not { } ca)
            {
                return NotFoundCa(id);
            }

            if (ca.IsActive)
            {
                return new TrellisError.CertificateState($"CA certificate {id} is ACTIVE: set it INACTIVE (UpdateCACertificate newStatus=INACTIVE) before deleting it.");
            }

            using var delete = Command(connection, "DELETE FROM ca_certificates WHERE id = $id", ("$id", id));
            delete.ExecuteNonQuery();
            _cas = null;
            return null;
        }
    }

    public Page<CaCertificateRecord> ListCaCertificates(string? marker, int? pageSize, bool ascending, string? templateName)
    {
        using var connection = _db.Open();
        var size = PageSize(pageSize);
        var after = DecodeToken(marker);
        var order = ascending ? "created_ms, id" : "created_ms DESC, id DESC";
        var comparison = ascending ? ">" : "<";
        using var command = Command(connection,
            $"SELECT {CaColumns} FROM ca_certificates WHERE ($after IS NULL OR (created_ms || ':' || id) {comparison} $after) ORDER BY {order}",
            ("$after", after));
        var rows = ReadAll(command, MapCaCertificate)
            .Where(c => templateName is null || c.RegistrationConfig?.TemplateName == templateName)
            .Take(size + 1).ToList();
        return ToPage(rows, size, c => $"{c.CreatedMs}:{c.Id}");
    }

    public Result<Page<CertificateRecord>> ListCertificatesByCa(string caId, string? marker, int? pageSize, bool ascending)
    {
        if (ValidateCertificateId(caId) is { } invalid)
        {
            return invalid;
        }

        using var connection = _db.Open();
        var size = PageSize(pageSize);
        var after = DecodeToken(marker);
        var order = ascending ? "created_ms, id" : "created_ms DESC, id DESC";
        var comparison = ascending ? ">" : "<";
        using var command = Command(connection,
            $"SELECT id, pem, status, ca_certificate_id, created_ms, updated_ms FROM certificates WHERE ca_certificate_id = $ca AND ($after IS NULL OR (created_ms || ':' || id) {comparison} $after) ORDER BY {order} LIMIT $limit",
            ("$ca", caId.ToLowerInvariant()), ("$after", after), ("$limit", size + 1));
        return ToPage(ReadAll(command, MapCertificate), size, c => $"{c.CreatedMs}:{c.Id}");
    }

    /// <summary>
    /// RegisterCertificate: a device certificate issued by a registered CA (or by Trellis's own CA).
    /// Its status is <paramref name="status"/>, else ACTIVE with <paramref name="setAsActive"/>, else INACTIVE.
    /// </summary>
    public Result<CertificateRecord> RegisterCertificate(string? pem, string? caPem, bool setAsActive, string? status)
    {
        var parsed = ParsePem(pem, "certificatePem");
        if (!parsed.IsSuccess)
        {
            return parsed.Error!;
        }

        using var certificate = parsed.Value!;
        var chosen = RegisterStatus(status, setAsActive);
        if (!chosen.IsSuccess)
        {
            return chosen.Error!;
        }

        string caId;
        if (_ca.Verifies(certificate))
        {
            caId = CertificateAuthority.CertificateId(_ca.Certificate);
        }
        else if (IssuingCa(certificate) is { } ca)
        {
            if (caPem is not null && ParsePem(caPem, "caCertificatePem") is { IsSuccess: true } given && CertificateAuthority.CertificateId(given.Value!) != ca.Id)
            {
                return new TrellisError.CertificateValidation($"caCertificatePem is not the CA that issued this certificate (registered CA {ca.Id} did).");
            }

            if (!ca.IsActive)
            {
                return new TrellisError.CertificateState($"The CA certificate {ca.Id} that issued this certificate is INACTIVE: activate it (UpdateCACertificate) first.");
            }

            caId = ca.Id;
        }
        else
        {
            return new TrellisError.CertificateValidation(
                "The certificate is not signed by a registered CA: register its CA first (RegisterCACertificate), or use RegisterCertificateWithoutCA.");
        }

        if (ValidityError(certificate, "certificatePem") is { } expired)
        {
            return expired;
        }

        return StoreRegistered(certificate, chosen.Value!, caId);
    }

    /// <summary>RegisterCertificateWithoutCA: any certificate, trusted by its registration alone (AWS's multi-account registration).</summary>
    public Result<CertificateRecord> RegisterCertificateWithoutCa(string? pem, string? status)
    {
        var parsed = ParsePem(pem, "certificatePem");
        if (!parsed.IsSuccess)
        {
            return parsed.Error!;
        }

        using var certificate = parsed.Value!;
        var chosen = RegisterStatus(status, false);
        if (!chosen.IsSuccess)
        {
            return chosen.Error!;
        }

        if (ValidityError(certificate, "certificatePem") is { } expired)
        {
            return expired;
        }

        return StoreRegistered(certificate, chosen.Value!, null);
    }

    /// <summary>The registered CA (of any status) whose key signed <paramref name="certificate"/>, or null.</summary>
    public CaCertificateRecord? IssuingCa(X509Certificate2 certificate)
    {
        foreach (var (record, ca) in CaIndex().Values)
        {
            if (CertificateSignature.IsSignedBy(certificate, ca))
            {
                return record;
            }
        }

        return null;
    }

    /// <summary>
    /// Whether the TLS listener lets a client certificate through to the MQTT CONNECT, where its
    /// status is decided: within its validity, and issued by Trellis's CA or a registered CA, or
    /// registered without a CA. An expired certificate is refused even when it is registered.
    /// </summary>
    public bool AcceptsClientCertificate(X509Certificate2 certificate) =>
        ValidityError(certificate, "certificate") is null
        && (IssuingCa(certificate) is not null
            || FindCertificate(CertificateAuthority.CertificateId(certificate)) is not null
            || _ca.Verifies(certificate));

    private Dictionary<string, (CaCertificateRecord Record, X509Certificate2 Certificate)> CaIndex()
    {
        if (Volatile.Read(ref _cas) is { } index)
        {
            return index;
        }

        lock (_writeLock)
        {
            using var connection = _db.Open();
            using var command = Command(connection, $"SELECT {CaColumns} FROM ca_certificates");
            index = ReadAll(command, MapCaCertificate).ToDictionary(c => c.Id, c => (c, X509Certificate2.CreateFromPem(c.Pem)));
            Volatile.Write(ref _cas, index);
            return index;
        }
    }

    private Result<CertificateRecord> StoreRegistered(X509Certificate2 certificate, string status, string? caId)
    {
        var id = CertificateAuthority.CertificateId(certificate);
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadCertificate(connection, id) is not null)
            {
                return new TrellisError.AlreadyExists($"The certificate {id} is already registered.", id, Options.Arn("cert/" + id));
            }

            var now = NowMs;
            using var insert = Command(connection,
                "INSERT INTO certificates(id, pem, status, ca_certificate_id, created_ms, updated_ms) VALUES ($id, $pem, $s, $ca, $ts, $ts)",
                ("$id", id), ("$pem", certificate.ExportCertificatePem() + "\n"), ("$s", status), ("$ca", caId), ("$ts", now));
            insert.ExecuteNonQuery();
            Changed();
            return ReadCertificate(connection, id)!;
        }
    }

    /// <summary>
    /// First connect of an unregistered certificate from a registered CA with auto-registration on
    /// and no JITP template: registered as PENDING_ACTIVATION and announced, as AWS does.
    /// </summary>
    public Result<CertificateRecord> AutoRegisterPending(X509Certificate2 certificate, CaCertificateRecord ca)
    {
        var stored = StoreRegistered(certificate, CertificateStatus.PendingActivation, ca.Id);
        if (stored.IsSuccess)
        {
            CertificateAutoRegistered?.Invoke(stored.Value!, ca.Id);
            return stored;
        }

        // A concurrent connect registered it first.
        return FindCertificate(CertificateAuthority.CertificateId(certificate)) is { } existing ? existing : stored;
    }

    private static Result<string> RegisterStatus(string? status, bool setAsActive)
    {
        if (status is null)
        {
            return setAsActive ? CertificateStatus.Active : CertificateStatus.Inactive;
        }

        return status is CertificateStatus.Active or CertificateStatus.Inactive or CertificateStatus.PendingActivation or CertificateStatus.RegisterInactive
            ? status
            : new TrellisError.InvalidRequest($"status must be ACTIVE, INACTIVE, PENDING_ACTIVATION or REGISTER_INACTIVE, not '{status}'.");
    }

    private TrellisError? ValidateRegistrationConfig(CaRegistrationConfig? config)
    {
        if (config is null)
        {
            return null;
        }

        if (config.TemplateName is { } name)
        {
            if (DescribeProvisioningTemplate(name) is not { IsSuccess: true } template)
            {
                return new TrellisError.InvalidRequest($"registrationConfig.templateName: the provisioning template '{name}' does not exist.");
            }

            if (template.Value!.Type != ProvisioningTemplateType.Jitp)
            {
                return new TrellisError.InvalidRequest($"registrationConfig.templateName: the provisioning template '{name}' is of type {template.Value.Type}; a CA needs a JITP template.");
            }
        }

        if (config.TemplateBody is { } body && Provisioning.TemplateDocument.Parse(body) is { IsSuccess: false } bad)
        {
            return new TrellisError.InvalidRequest("registrationConfig.templateBody: " + bad.Error!.Message);
        }

        return null;
    }

    private static Result<X509Certificate2> ParsePem(string? pem, string field)
    {
        if (string.IsNullOrWhiteSpace(pem))
        {
            return new TrellisError.InvalidRequest($"{field} is required.");
        }

        try
        {
            return X509Certificate2.CreateFromPem(pem);
        }
        catch (CryptographicException e)
        {
            return new TrellisError.CertificateValidation($"{field} is not a PEM X.509 certificate: {e.Message}");
        }
    }

    private TrellisError? ValidityError(X509Certificate2 certificate, string field)
    {
        var now = _time.GetUtcNow();
        return now < certificate.NotBefore.ToUniversalTime() || now > certificate.NotAfter.ToUniversalTime()
            ? new TrellisError.CertificateValidation($"{field} is not valid now: it is valid from {certificate.NotBefore.ToUniversalTime():u} to {certificate.NotAfter.ToUniversalTime():u}.")
            : null;
    }

    private static string? SerializeConfig(CaRegistrationConfig? config) =>
        config is null ? null : JsonSerializer.Serialize(config, RegistryJsonContext.Default.CaRegistrationConfig);

    private CaCertificateRecord? ReadCaCertificate(SqliteConnection connection, string id)
    {
        using var command = Command(connection, $"SELECT {CaColumns} FROM ca_certificates WHERE id = $id", ("$id", id));
        using var reader = command.ExecuteReader();
        return reader.Read() ? MapCaCertificate(reader) : null;
    }

    private CaCertificateRecord MapCaCertificate(SqliteDataReader reader) => new(
        reader.GetString(0),
        CaArn(reader.GetString(0)),
        reader.GetString(1),
        reader.GetString(2),
        reader.GetString(3),
        reader.IsDBNull(4) ? null : JsonSerializer.Deserialize(reader.GetString(4), RegistryJsonContext.Default.CaRegistrationConfig),
        reader.GetString(5),
        reader.GetInt64(6),
        reader.GetInt64(7));

    private string CaArn(string id) => Options.Arn("cacert/" + id);

    private static TrellisError NotFoundCa(string id) => new TrellisError.NotFound($"The CA certificate {id} does not exist.");
}
