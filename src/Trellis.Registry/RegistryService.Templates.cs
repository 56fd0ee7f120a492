using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Data.Sqlite;
using Trellis.Core.Errors;
using Trellis.Registry.Provisioning;

namespace Trellis.Registry;

/// <summary>Provisioning templates and their versions (AWS's CreateProvisioningTemplate family).</summary>
public sealed partial class RegistryService
{
    /// <summary>AWS keeps at most 5 versions of a template.</summary>
    private const int MaxTemplateVersions = 5;

    private const int MaxTemplateBodyLength = 10240;

    private const string TemplateColumns =
        "t.name, t.description, t.enabled, t.type, t.role_arn, t.hook, t.default_version, v.body, t.created_ms, t.updated_ms";

    private const string TemplateFrom =
        "FROM provisioning_templates t JOIN provisioning_template_versions v ON v.template_name = t.name AND v.version = t.default_version";

    [GeneratedRegex("^[0-9A-Za-z_-]{1,36}$")]
    private static partial Regex TemplateNamePattern();

    public Result<ProvisioningTemplateRecord> CreateProvisioningTemplate(
        string name, string? description, string? body, bool enabled, string? roleArn, ProvisioningHookConfig? hook, string? type)
    {
        type ??= ProvisioningTemplateType.FleetProvisioning;
        if (ValidateTemplate(name, body, type, hook) is { } invalid)
        {
            return invalid;
        }

        if (string.IsNullOrWhiteSpace(roleArn))
        {
            return new TrellisError.InvalidRequest("provisioningRoleArn is required (any role ARN: Trellis provisions with its own authority, but keeps it for compatibility).");
        }

        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadTemplate(connection, name) is { } existing)
            {
                return new TrellisError.AlreadyExists($"The provisioning template '{name}' already exists.", name, existing.Arn);
            }

            var now = NowMs;
            using var transaction = connection.BeginTransaction();
            using (var insert = Command(connection,
                "INSERT INTO provisioning_templates(name, description, enabled, type, role_arn, hook, default_version, next_version, created_ms, updated_ms) " +
                "VALUES ($n, $d, $e, $t, $r, $h, 1, 2, $ts, $ts); " +
                "INSERT INTO provisioning_template_versions(template_name, version, body, created_ms) VALUES ($n, 1, $b, $ts)",
                ("$n", name), ("$d", description), ("$e", enabled ? 1 : 0), ("$t", type), ("$r", roleArn), ("$h", SerializeHook(hook)), ("$b", body), ("$ts", now)))
            {
                insert.Transaction = transaction;
                insert.ExecuteNonQuery();
            }

            transaction.Commit();
            return ReadTemplate(connection, name)!;
        }
    }

    public Result<ProvisioningTemplateRecord> DescribeProvisioningTemplate(string name)
    {
        using var connection = _db.Open();
        return ReadTemplate(connection, name) is { } template ? template : NotFoundTemplate(name);
    }

    public Page<ProvisioningTemplateRecord> ListProvisioningTemplates(string? nextToken, int? maxResults)
    {
        using var connection = _db.Open();
        var size = PageSize(maxResults);
        using var command = Command(connection,
            $"SELECT {TemplateColumns} {TemplateFrom} WHERE ($after IS NULL OR t.name > $after) ORDER BY t.name LIMIT $limit",
            ("$after", DecodeToken(nextToken)), ("$limit", size + 1));
        return ToPage(ReadAll(command, MapTemplate), size, t => t.Name);
    }

    public TrellisError? UpdateProvisioningTemplate(
        string name, string? description, bool? enabled, int? defaultVersion, string? roleArn, ProvisioningHookConfig? hook, bool removeHook)
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadTemplate(connection, name) is not { } template)
            {
                return NotFoundTemplate(name);
            }

            if (hook is not null && ValidateHook(hook, template.Type) is { } badHook)
            {
                return badHook;
            }

            if (defaultVersion is { } version && ReadTemplateVersion(connection, name, version) is null)
            {
                return new TrellisError.NotFound($"The provisioning template '{name}' has no version {version}.");
            }

            using var update = Command(connection,
                "UPDATE provisioning_templates SET description = $d, enabled = $e, default_version = $v, role_arn = $r, hook = $h, updated_ms = $ts WHERE name = $n",
                ("$d", description ?? template.Description), ("$e", (enabled ?? template.Enabled) ? 1 : 0), ("$v", defaultVersion ?? template.DefaultVersion),
                ("$r", roleArn ?? template.RoleArn), ("$h", removeHook ? null : SerializeHook(hook ?? template.Hook)), ("$ts", NowMs), ("$n", name));
            update.ExecuteNonQuery();
            return null;
        }
    }

    public TrellisError? DeleteProvisioningTemplate(string name)
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadTemplate(connection, name) is null)
            {
                return NotFoundTemplate(name);
            }

            if (CaIndex().Values.FirstOrDefault(c => c.Record.RegistrationConfig?.TemplateName == name).Record is { } ca)
            {
                return new TrellisError.DeleteConflict($"The provisioning template '{name}' is the JITP template of CA certificate {ca.Id}: remove it there (UpdateCACertificate) first.");
            }

            using var delete = Command(connection, "DELETE FROM provisioning_templates WHERE name = $n", ("$n", name));
            delete.ExecuteNonQuery();
            return null;
        }
    }

    public Result<ProvisioningTemplateVersionRecord> CreateProvisioningTemplateVersion(string name, string? body, bool setAsDefault)
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadTemplate(connection, name) is not { } template)
            {
                return NotFoundTemplate(name);
            }

            if (ValidateTemplate(name, body, template.Type, null) is { } invalid)
            {
                return invalid;
            }

            using (var count = Command(connection, "SELECT COUNT(*) FROM provisioning_template_versions WHERE template_name = $n", ("$n", name)))
            {
                if ((long)count.ExecuteScalar()! >= MaxTemplateVersions)
                {
                    return new TrellisError.VersionsLimitExceeded($"The provisioning template '{name}' already has {MaxTemplateVersions} versions: delete one (DeleteProvisioningTemplateVersion) first.");
                }
            }

            long version;
            using (var next = Command(connection, "SELECT next_version FROM provisioning_templates WHERE name = $n", ("$n", name)))
            {
                version = (long)next.ExecuteScalar()!;
            }

            var now = NowMs;
            using var transaction = connection.BeginTransaction();
            using (var insert = Command(connection,
                "INSERT INTO provisioning_template_versions(template_name, version, body, created_ms) VALUES ($n, $v, $b, $ts); " +
                "UPDATE provisioning_templates SET next_version = $v + 1, default_version = CASE WHEN $d THEN $v ELSE default_version END, updated_ms = $ts WHERE name = $n",
                ("$n", name), ("$v", version), ("$b", body), ("$d", setAsDefault), ("$ts", now)))
            {
                insert.Transaction = transaction;
                insert.ExecuteNonQuery();
            }

            transaction.Commit();
            return ReadTemplateVersion(connection, name, (int)version)!;
        }
    }

    public Result<ProvisioningTemplateVersionRecord> DescribeProvisioningTemplateVersion(string name, int version)
    {
        using var connection = _db.Open();
        if (ReadTemplate(connection, name) is null)
        {
            return NotFoundTemplate(name);
        }

        return ReadTemplateVersion(connection, name, version) is { } found
            ? found
            : new TrellisError.NotFound($"The provisioning template '{name}' has no version {version}.");
    }

    public Result<List<ProvisioningTemplateVersionRecord>> ListProvisioningTemplateVersions(string name)
    {
        using var connection = _db.Open();
        if (ReadTemplate(connection, name) is not { } template)
        {
            return NotFoundTemplate(name);
        }

        using var command = Command(connection, "SELECT version, body, created_ms FROM provisioning_template_versions WHERE template_name = $n ORDER BY version", ("$n", name));
        return ReadAll(command, r => new ProvisioningTemplateVersionRecord(r.GetInt32(0), r.GetString(1), r.GetInt32(0) == template.DefaultVersion, r.GetInt64(2)));
    }

    public TrellisError? DeleteProvisioningTemplateVersion(string name, int version)
    {
        lock (_writeLock)
        {
            using var connection = _db.Open();
            if (ReadTemplate(connection, name) is not { } template)
            {
                return NotFoundTemplate(name);
            }

            if (ReadTemplateVersion(connection, name, version) is null)
            {
                return new TrellisError.NotFound($"The provisioning template '{name}' has no version {version}.");
            }

            if (version == template.DefaultVersion)
            {
                return new TrellisError.DeleteConflict($"Version {version} is the default version of '{name}': make another version the default (UpdateProvisioningTemplate defaultVersionId) first.");
            }

            using var delete = Command(connection, "DELETE FROM provisioning_template_versions WHERE template_name = $n AND version = $v", ("$n", name), ("$v", version));
            delete.ExecuteNonQuery();
            return null;
        }
    }

    private static TrellisError? ValidateTemplate(string name, string? body, string type, ProvisioningHookConfig? hook)
    {
        if (!TemplateNamePattern().IsMatch(name))
        {
            return new TrellisError.InvalidRequest($"Template name '{name}' is invalid: use 1-36 characters from a-z A-Z 0-9 _ -");
        }

        if (type is not (ProvisioningTemplateType.FleetProvisioning or ProvisioningTemplateType.Jitp))
        {
            return new TrellisError.InvalidRequest($"type must be FLEET_PROVISIONING or JITP, not '{type}'.");
        }

        if (string.IsNullOrWhiteSpace(body))
        {
            return new TrellisError.InvalidRequest("templateBody is required.");
        }

        if (body.Length > MaxTemplateBodyLength)
        {
            return new TrellisError.InvalidRequest($"templateBody is {body.Length} characters; the limit is {MaxTemplateBodyLength}.");
        }

        if (TemplateDocument.Parse(body) is { IsSuccess: false } bad)
        {
            return new TrellisError.InvalidRequest("templateBody: " + bad.Error!.Message);
        }

        return hook is null ? null : ValidateHook(hook, type);
    }

    private static TrellisError? ValidateHook(ProvisioningHookConfig hook, string type)
    {
        if (type != ProvisioningTemplateType.FleetProvisioning)
        {
            return new TrellisError.InvalidRequest("A pre-provisioning hook applies to FLEET_PROVISIONING templates only.");
        }

        if (!Uri.TryCreate(hook.TargetArn, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
        {
            return new TrellisError.InvalidRequest(
                $"preProvisioningHook.targetArn '{hook.TargetArn}' is not an http(s) URL: Trellis calls a webhook that answers like AWS's hook Lambda ({{\"allowProvisioning\": true|false, \"parameterOverrides\": {{…}}}}).");
        }

        return hook.PayloadVersion is null or "2020-04-01"
            ? null
            : new TrellisError.InvalidRequest($"preProvisioningHook.payloadVersion must be 2020-04-01, not '{hook.PayloadVersion}'.");
    }

    private static string? SerializeHook(ProvisioningHookConfig? hook) =>
        hook is null ? null : JsonSerializer.Serialize(hook, RegistryJsonContext.Default.ProvisioningHookConfig);

    private ProvisioningTemplateRecord? ReadTemplate(SqliteConnection connection, string name)
    {
        using var command = Command(connection, $"SELECT {TemplateColumns} {TemplateFrom} WHERE t.name = $n", ("$n", name));
        using var reader = command.ExecuteReader();
        return reader.Read() ? MapTemplate(reader) : null;
    }

    private static ProvisioningTemplateVersionRecord? ReadTemplateVersion(SqliteConnection connection, string name, int version)
    {
        using var command = Command(connection,
            "SELECT v.version, v.body, v.created_ms, t.default_version FROM provisioning_template_versions v JOIN provisioning_templates t ON t.name = v.template_name WHERE v.template_name = $n AND v.version = $v",
            ("$n", name), ("$v", version));
        using var reader = command.ExecuteReader();
        return reader.Read() ? new ProvisioningTemplateVersionRecord(reader.GetInt32(0), reader.GetString(1), reader.GetInt32(0) == reader.GetInt32(3), reader.GetInt64(2)) : null;
    }

    private ProvisioningTemplateRecord MapTemplate(SqliteDataReader reader) => new(
        reader.GetString(0),
        Options.Arn("provisioningtemplate/" + reader.GetString(0)),
        reader.IsDBNull(1) ? null : reader.GetString(1),
        reader.GetInt64(2) != 0,
        reader.GetString(3),
        reader.GetString(4),
        reader.IsDBNull(5) ? null : JsonSerializer.Deserialize(reader.GetString(5), RegistryJsonContext.Default.ProvisioningHookConfig),
        reader.GetInt32(6),
        reader.GetString(7),
        reader.GetInt64(8),
        reader.GetInt64(9));

    private static TrellisError NotFoundTemplate(string name) => new TrellisError.NotFound($"The provisioning template '{name}' does not exist.");
}
