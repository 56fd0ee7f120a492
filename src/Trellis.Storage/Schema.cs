namespace Trellis.Storage;

/// <summary>
/// Forward-only migrations of the registry database. Append a new entry to change the schema;
/// never edit one that has shipped.
/// </summary>
public static class Schema
{
    public static IReadOnlyList<string> Migrations { get; } =
    [
        """
        CREATE TABLE things (
            name TEXT PRIMARY KEY,
            id TEXT NOT NULL,
            type_name TEXT,
            attributes TEXT NOT NULL DEFAULT '{}',
            version INTEGER NOT NULL DEFAULT 1,
            created_ms INTEGER NOT NULL
        );
        CREATE TABLE certificates (
            id TEXT PRIMARY KEY,
            pem TEXT NOT NULL,
            status TEXT NOT NULL,
            ca_certificate_id TEXT,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL
        );
        CREATE TABLE policies (
            name TEXT PRIMARY KEY,
            default_version INTEGER NOT NULL,
            next_version INTEGER NOT NULL,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL
        );
        CREATE TABLE policy_versions (
            policy_name TEXT NOT NULL REFERENCES policies(name) ON DELETE CASCADE,
            version INTEGER NOT NULL,
            document TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            PRIMARY KEY (policy_name, version)
        );
        CREATE TABLE policy_targets (
            policy_name TEXT NOT NULL REFERENCES policies(name) ON DELETE CASCADE,
            target TEXT NOT NULL,
            PRIMARY KEY (policy_name, target)
        );
        CREATE INDEX policy_targets_target ON policy_targets(target);
        CREATE TABLE thing_principals (
            thing_name TEXT NOT NULL REFERENCES things(name) ON DELETE CASCADE,
            principal TEXT NOT NULL,
            exclusive INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (thing_name, principal)
        );
        CREATE INDEX thing_principals_principal ON thing_principals(principal);
        CREATE TABLE retained_messages (
            topic TEXT PRIMARY KEY,
            qos INTEGER NOT NULL,
            payload BLOB NOT NULL,
            properties TEXT,
            sender TEXT NOT NULL,
            received_ms INTEGER NOT NULL
        );
        CREATE TABLE sessions (
            client_id TEXT PRIMARY KEY,
            protocol_level INTEGER NOT NULL,
            expiry_seconds INTEGER NOT NULL,
            disconnected_ms INTEGER NOT NULL,
            subscriptions TEXT NOT NULL
        );
        CREATE TABLE session_messages (
            client_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            topic TEXT NOT NULL,
            qos INTEGER NOT NULL,
            retain INTEGER NOT NULL,
            payload BLOB NOT NULL,
            properties TEXT,
            sender TEXT NOT NULL,
            received_ms INTEGER NOT NULL,
            PRIMARY KEY (client_id, seq)
        );
        """,
        """
        CREATE TABLE thing_types (
            name TEXT PRIMARY KEY,
            id TEXT NOT NULL,
            description TEXT,
            searchable_attributes TEXT NOT NULL DEFAULT '[]',
            deprecated INTEGER NOT NULL DEFAULT 0,
            deprecated_ms INTEGER,
            created_ms INTEGER NOT NULL
        );
        CREATE TABLE thing_groups (
            name TEXT PRIMARY KEY,
            id TEXT NOT NULL,
            parent TEXT REFERENCES thing_groups(name),
            description TEXT,
            attributes TEXT NOT NULL DEFAULT '{}',
            version INTEGER NOT NULL DEFAULT 1,
            created_ms INTEGER NOT NULL
        );
        CREATE INDEX thing_groups_parent ON thing_groups(parent);
        CREATE TABLE thing_group_members (
            group_name TEXT NOT NULL REFERENCES thing_groups(name) ON DELETE CASCADE,
            thing_name TEXT NOT NULL REFERENCES things(name) ON DELETE CASCADE,
            PRIMARY KEY (group_name, thing_name)
        );
        CREATE INDEX thing_group_members_thing ON thing_group_members(thing_name);
        """,
        """
        CREATE TABLE device_tokens (
            id TEXT PRIMARY KEY,
            thing_name TEXT NOT NULL REFERENCES things(name) ON DELETE CASCADE,
            salt BLOB NOT NULL,
            hash BLOB NOT NULL,
            description TEXT,
            created_ms INTEGER NOT NULL,
            expires_ms INTEGER,
            revoked_ms INTEGER
        );
        CREATE INDEX device_tokens_thing ON device_tokens(thing_name);
        """,
        """
        CREATE TABLE audit_log (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            time_ms INTEGER NOT NULL,
            access_key TEXT,
            operation TEXT NOT NULL,
            method TEXT NOT NULL,
            path TEXT NOT NULL,
            target TEXT,
            status INTEGER NOT NULL,
            error_type TEXT
        );
        CREATE INDEX audit_log_time ON audit_log(time_ms);
        """,
        """
        CREATE TABLE api_users (
            access_key_id TEXT PRIMARY KEY,
            secret TEXT NOT NULL,
            name TEXT NOT NULL UNIQUE,
            role TEXT NOT NULL,
            created_ms INTEGER NOT NULL
        );
        """,
        """
        CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE ca_certificates (
            id TEXT PRIMARY KEY,
            pem TEXT NOT NULL,
            status TEXT NOT NULL,
            auto_registration TEXT NOT NULL,
            registration_config TEXT,
            mode TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL
        );
        CREATE INDEX certificates_ca ON certificates(ca_certificate_id);
        CREATE TABLE provisioning_templates (
            name TEXT PRIMARY KEY,
            description TEXT,
            enabled INTEGER NOT NULL,
            type TEXT NOT NULL,
            role_arn TEXT NOT NULL,
            hook TEXT,
            default_version INTEGER NOT NULL,
            next_version INTEGER NOT NULL,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL
        );
        CREATE TABLE provisioning_template_versions (
            template_name TEXT NOT NULL REFERENCES provisioning_templates(name) ON DELETE CASCADE,
            version INTEGER NOT NULL,
            body TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            PRIMARY KEY (template_name, version)
        );
        CREATE TABLE ownership_tokens (
            hash TEXT PRIMARY KEY,
            certificate_id TEXT NOT NULL,
            expires_ms INTEGER NOT NULL
        );
        CREATE INDEX ownership_tokens_expiry ON ownership_tokens(expires_ms);
        """,
        """
        CREATE TABLE topic_rules (
            name TEXT PRIMARY KEY,
            sql TEXT NOT NULL,
            description TEXT,
            disabled INTEGER NOT NULL,
            sql_version TEXT NOT NULL,
            actions TEXT NOT NULL,
            error_action TEXT,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL
        );
        """,
        """
        CREATE TABLE topic_rule_destinations (
            arn TEXT PRIMARY KEY,
            confirmation_url TEXT NOT NULL UNIQUE,
            status TEXT NOT NULL,
            status_reason TEXT,
            token_hash TEXT,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL
        );
        CREATE INDEX topic_rule_destinations_token ON topic_rule_destinations(token_hash);
        """,
        """
        CREATE TABLE thing_connectivity (
            thing TEXT PRIMARY KEY,
            connected INTEGER NOT NULL,
            timestamp_ms INTEGER NOT NULL,
            disconnect_reason TEXT
        ) WITHOUT ROWID;
        """,
        """
        ALTER TABLE thing_groups ADD COLUMN query_string TEXT;
        ALTER TABLE thing_groups ADD COLUMN query_version TEXT;
        ALTER TABLE thing_groups ADD COLUMN index_name TEXT;
        CREATE TABLE fleet_indexing (
            name TEXT PRIMARY KEY,
            configuration TEXT NOT NULL,
            updated_ms INTEGER NOT NULL
        );
        """,
        """
        CREATE TABLE fleet_metrics (
            name TEXT PRIMARY KEY,
            definition TEXT NOT NULL,
            version INTEGER NOT NULL,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL
        );
        """,
        """
        CREATE TABLE security_profiles (
            name TEXT PRIMARY KEY,
            definition TEXT NOT NULL,
            version INTEGER NOT NULL,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL
        );
        CREATE TABLE security_profile_targets (
            profile TEXT NOT NULL,
            target_arn TEXT NOT NULL,
            PRIMARY KEY (profile, target_arn)
        );
        CREATE INDEX security_profile_targets_target ON security_profile_targets(target_arn);
        CREATE TABLE defender_violations (
            violation_id TEXT PRIMARY KEY,
            thing TEXT NOT NULL,
            profile TEXT NOT NULL,
            behavior_name TEXT NOT NULL,
            behavior TEXT NOT NULL,
            last_value TEXT,
            start_ms INTEGER NOT NULL,
            last_ms INTEGER NOT NULL,
            verification_state TEXT,
            verification_description TEXT
        );
        CREATE TABLE defender_violation_events (
            id TEXT PRIMARY KEY,
            violation_id TEXT NOT NULL,
            thing TEXT NOT NULL,
            profile TEXT NOT NULL,
            behavior TEXT NOT NULL,
            value TEXT,
            event_type TEXT NOT NULL,
            at_ms INTEGER NOT NULL,
            verification_state TEXT,
            verification_description TEXT
        );
        CREATE INDEX defender_violation_events_time ON defender_violation_events(at_ms);
        CREATE INDEX defender_violation_events_violation ON defender_violation_events(violation_id);
        """,
        """
        CREATE TABLE alarm_models (
            name TEXT PRIMARY KEY,
            definition TEXT NOT NULL,
            version INTEGER NOT NULL,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL
        );
        CREATE TABLE alarms (
            id TEXT PRIMARY KEY,
            model TEXT NOT NULL,
            thing TEXT NOT NULL,
            severity TEXT NOT NULL,
            state TEXT NOT NULL,
            details TEXT,
            started_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL,
            cleared_ms INTEGER
        );
        CREATE UNIQUE INDEX alarms_open ON alarms(model, thing) WHERE state <> 'CLEARED';
        CREATE INDEX alarms_state ON alarms(state, started_ms);
        CREATE TABLE alarm_history (
            alarm_id TEXT NOT NULL,
            step INTEGER NOT NULL,
            state TEXT NOT NULL,
            at_ms INTEGER NOT NULL,
            actor TEXT NOT NULL,
            comment TEXT,
            PRIMARY KEY (alarm_id, step)
        );
        """,
        """
        CREATE TABLE notification_targets (
            name TEXT PRIMARY KEY,
            definition TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL
        );
        """,
        """
        ALTER TABLE device_tokens ADD COLUMN sealed_token TEXT;
        """,
    ];
}
