using System.Text.Json;
using Microsoft.Data.Sqlite;
using Trellis.Storage;
using static Trellis.Storage.SqliteCommands;

namespace Trellis.Jobs;

/// <summary>
/// Jobs in SQLite (<c>jobs.db</c> in the data folder, WAL): a committed write survives kill -9, so
/// an execution the API or a device saw change is never lost, and the rollout and time-outs resume
/// from what is on disk after a restart.
/// </summary>
public sealed class SqliteJobStore(SqliteDatabase db) : IJobStore
{
    /// <summary>
    /// Forward-only migrations of jobs.db; append, never edit. Executions and unreached targets are
    /// clustered on their keys (WITHOUT ROWID): a release of 500 things writes two b-trees per
    /// execution and one per target instead of four and three. <c>job_counts</c> holds how many of a
    /// job's current executions stand in each status, kept in the transaction that changes them, so
    /// the abort and completion checks after every device update read a few rows, not the whole job.
    /// </summary>
    public static IReadOnlyList<string> Migrations { get; } =
    [
        """
        CREATE TABLE jobs (
            job_id TEXT PRIMARY KEY,
            arn TEXT NOT NULL,
            status TEXT NOT NULL,
            target_selection TEXT NOT NULL,
            targets TEXT NOT NULL,
            document TEXT NOT NULL,
            source_document TEXT NOT NULL,
            description TEXT,
            settings TEXT NOT NULL,
            reason_code TEXT,
            comment TEXT,
            force_canceled INTEGER NOT NULL,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL,
            completed_ms INTEGER,
            rate_per_minute REAL NOT NULL,
            rate_mark INTEGER NOT NULL
        );
        CREATE TABLE job_targets_pending (
            job_id TEXT NOT NULL,
            thing TEXT NOT NULL,
            seq INTEGER NOT NULL,
            PRIMARY KEY (job_id, thing)
        ) WITHOUT ROWID;
        CREATE INDEX job_targets_pending_order ON job_targets_pending (job_id, seq);
        CREATE TABLE job_executions (
            job_id TEXT NOT NULL,
            thing TEXT NOT NULL,
            execution_number INTEGER NOT NULL,
            current INTEGER NOT NULL,
            status TEXT NOT NULL,
            status_details TEXT NOT NULL,
            version INTEGER NOT NULL,
            queued_ms INTEGER NOT NULL,
            started_ms INTEGER,
            updated_ms INTEGER NOT NULL,
            timeout_at_ms INTEGER,
            force_canceled INTEGER NOT NULL,
            retry_attempt INTEGER NOT NULL,
            PRIMARY KEY (job_id, thing, execution_number)
        ) WITHOUT ROWID;
        CREATE INDEX job_executions_thing ON job_executions (thing, current, status);
        CREATE INDEX job_executions_timeout ON job_executions (timeout_at_ms) WHERE timeout_at_ms IS NOT NULL;
        CREATE TABLE job_templates (
            template_id TEXT PRIMARY KEY,
            arn TEXT NOT NULL,
            description TEXT NOT NULL,
            document TEXT NOT NULL,
            settings TEXT NOT NULL,
            created_ms INTEGER NOT NULL
        );
        """,
        """
        CREATE TABLE job_counts (
            job_id TEXT NOT NULL,
            status TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (job_id, status)
        ) WITHOUT ROWID;
        INSERT INTO job_counts (job_id, status, n)
        SELECT job_id, status, COUNT(*) FROM job_executions WHERE current = 1 GROUP BY job_id, status;
        """,
        Firmware.FileFirmwareStore.Migration,
        Firmware.FileFirmwareStore.SigningAndDeltasMigration,
        Firmware.FileFirmwareStore.StreamsMigration,
    ];

    private const string JobColumns = "job_id, arn, status, target_selection, targets, document, source_document, description, settings, reason_code, comment, force_canceled, created_ms, updated_ms, completed_ms, rate_per_minute, rate_mark";
    private const string ExecutionColumns = "job_id, thing, execution_number, status, status_details, version, queued_ms, started_ms, updated_ms, timeout_at_ms, force_canceled, retry_attempt";

    public bool InsertJob(JobRecord job, IReadOnlyCollection<string> things)
    {
        using var connection = db.Open();
        using var transaction = connection.BeginTransaction();
        using (var exists = Command(connection, "SELECT 1 FROM jobs WHERE job_id = $id", ("$id", job.JobId)))
        {
            if (exists.ExecuteScalar() is not null)
            {
                return false;
            }
        }

        WriteJob(connection, job, insert: true);
        using (var insert = Command(connection, "INSERT INTO job_targets_pending (job_id, thing, seq) VALUES ($j, $t, $s) ON CONFLICT DO NOTHING", ("$j", job.JobId), ("$t", ""), ("$s", 0L)))
        {
            var seq = 0L;
            foreach (var thing in things)
            {
                insert.Parameters["$t"].Value = thing;
                insert.Parameters["$s"].Value = seq++;
                insert.ExecuteNonQuery();
            }
        }

        transaction.Commit();
        return true;
    }

    public JobRecord? GetJob(string jobId)
    {
        using var connection = db.Open();
        using var command = Command(connection, $"SELECT {JobColumns} FROM jobs WHERE job_id = $id", ("$id", jobId));
        return ReadJobs(command).FirstOrDefault();
    }

    public IReadOnlyList<JobRecord> ListJobs(string? status, string? targetSelection, string? targetArn, string? after, int limit)
    {
        using var connection = db.Open();
        using var command = Command(connection, $"""
            SELECT {JobColumns} FROM jobs
            WHERE job_id > $after AND ($status IS NULL OR status = $status) AND ($selection IS NULL OR target_selection = $selection)
            ORDER BY job_id LIMIT $limit
            """, ("$after", after ?? string.Empty), ("$status", status), ("$selection", targetSelection), ("$limit", targetArn is null ? limit : -1));
        var jobs = ReadJobs(command);
        return targetArn is null ? jobs : [.. jobs.Where(j => j.Targets.Contains(targetArn, StringComparer.Ordinal)).Take(limit)];
    }

    public IReadOnlyList<JobRecord> ActiveJobs()
    {
        using var connection = db.Open();
        using var command = Command(connection, $"SELECT {JobColumns} FROM jobs WHERE status IN ('{JobStatus.InProgress}', '{JobStatus.Scheduled}') ORDER BY created_ms");
        return ReadJobs(command);
    }

    public void DeleteJob(string jobId)
    {
        using var connection = db.Open();
        using var transaction = connection.BeginTransaction();
        foreach (var table in new[] { "job_executions", "job_targets_pending", "job_counts", "jobs" })
        {
            using var delete = Command(connection, $"DELETE FROM {table} WHERE job_id = $id", ("$id", jobId));
            delete.ExecuteNonQuery();
        }

        transaction.Commit();
    }

    public IReadOnlyList<string> PendingTargets(string jobId, int limit)
    {
        using var connection = db.Open();
        using var command = Command(connection, "SELECT thing FROM job_targets_pending WHERE job_id = $id ORDER BY seq LIMIT $limit", ("$id", jobId), ("$limit", limit));
        var things = new List<string>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            things.Add(reader.GetString(0));
        }

        return things;
    }

    public int PendingTargetCount(string jobId)
    {
        using var connection = db.Open();
        using var command = Command(connection, "SELECT COUNT(*) FROM job_targets_pending WHERE job_id = $id", ("$id", jobId));
        return Convert.ToInt32(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }

    public (IReadOnlyList<string> Things, long Through) NextTargets(string jobId, int limit)
    {
        using var connection = db.Open();
        using var command = Command(connection, "SELECT thing, seq FROM job_targets_pending WHERE job_id = $id ORDER BY seq LIMIT $limit", ("$id", jobId), ("$limit", limit));
        var things = new List<string>();
        var through = long.MinValue;
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            things.Add(reader.GetString(0));
            through = reader.GetInt64(1);
        }

        return (things, through);
    }

    public IReadOnlyDictionary<string, List<JobExecutionRecord>> PendingExecutionsOfTargets(string jobId, long through)
    {
        var pending = new Dictionary<string, List<JobExecutionRecord>>(StringComparer.Ordinal);
        using var connection = db.Open();
        using var command = Command(connection, $"""
            SELECT {string.Join(", ", ExecutionColumns.Split(", ").Select(c => "e." + c))} FROM job_targets_pending p
            JOIN job_executions e ON e.thing = p.thing AND e.current = 1 AND e.status IN ('{ExecutionStatus.Queued}', '{ExecutionStatus.InProgress}')
            WHERE p.job_id = $j AND p.seq <= $through
            ORDER BY e.queued_ms, e.job_id
            """, ("$j", jobId), ("$through", through));
        foreach (var execution in ReadExecutions(command))
        {
            (pending.TryGetValue(execution.Thing, out var list) ? list : pending[execution.Thing] = []).Add(execution);
        }

        return pending;
    }

    public int Release(JobRecord job, long through, JobExecutionRecord queued)
    {
        using var connection = db.Open();
        using var transaction = connection.BeginTransaction();
        WriteJob(connection, job, insert: false);
        int created;
        using (var insert = Command(connection, $"""
            INSERT INTO job_executions ({ExecutionColumns}, current)
            SELECT job_id, thing, $n, $status, $details, $version, $queued, NULL, $updated, $timeout, 0, $retry, 1
            FROM job_targets_pending WHERE job_id = $j AND seq <= $through
            ORDER BY seq
            ON CONFLICT (job_id, thing, execution_number) DO NOTHING
            """, ("$j", job.JobId), ("$through", through), ("$n", queued.ExecutionNumber), ("$status", queued.Status), ("$details", "{}"), ("$version", queued.Version),
            ("$queued", queued.QueuedMs), ("$updated", queued.UpdatedMs), ("$timeout", queued.TimeoutAtMs), ("$retry", (long)queued.RetryAttempt)))
        {
            created = insert.ExecuteNonQuery();
        }

        using (var delete = Command(connection, "DELETE FROM job_targets_pending WHERE job_id = $j AND seq <= $through", ("$j", job.JobId), ("$through", through)))
        {
            delete.ExecuteNonQuery();
        }

        AddCounts(connection, new Dictionary<(string Job, string Status), long> { [(job.JobId, queued.Status)] = created });
        transaction.Commit();
        return created;
    }

    public bool AddPendingTarget(string jobId, string thing)
    {
        using var connection = db.Open();
        using var command = Command(connection, """
            INSERT INTO job_targets_pending (job_id, thing, seq)
            SELECT $j, $t, COALESCE((SELECT MAX(seq) FROM job_targets_pending WHERE job_id = $j), 0) + 1
            WHERE NOT EXISTS (SELECT 1 FROM job_executions WHERE job_id = $j AND thing = $t)
            ON CONFLICT DO NOTHING
            """, ("$j", jobId), ("$t", thing));
        return command.ExecuteNonQuery() > 0;
    }

    public void Save(JobRecord? job, IReadOnlyCollection<JobExecutionRecord> executions, IReadOnlyCollection<string>? reached = null)
    {
        using var connection = db.Open();
        using var transaction = connection.BeginTransaction();
        if (job is not null)
        {
            WriteJob(connection, job, insert: false);
        }

        if (executions.Count > 0)
        {
            var counts = new Dictionary<(string Job, string Status), long>();
            using var current = Command(connection, "SELECT status FROM job_executions WHERE job_id = $j AND thing = $t AND current = 1", ("$j", ""), ("$t", ""));
            using var older = Command(connection, "UPDATE job_executions SET current = 0 WHERE job_id = $j AND thing = $t AND execution_number < $n AND current = 1",
                ("$j", ""), ("$t", ""), ("$n", 0L));
            using var upsert = Command(connection, $"""
                INSERT INTO job_executions ({ExecutionColumns}, current)
                VALUES ($j, $t, $n, $status, $details, $version, $queued, $started, $updated, $timeout, $force, $retry, 1)
                ON CONFLICT (job_id, thing, execution_number) DO UPDATE SET
                    status = excluded.status, status_details = excluded.status_details, version = excluded.version,
                    started_ms = excluded.started_ms, updated_ms = excluded.updated_ms, timeout_at_ms = excluded.timeout_at_ms,
                    force_canceled = excluded.force_canceled
                """, ("$j", ""), ("$t", ""), ("$n", 0L), ("$status", ""), ("$details", ""), ("$version", 0L), ("$queued", 0L),
                ("$started", null), ("$updated", 0L), ("$timeout", null), ("$force", 0L), ("$retry", 0L));
            foreach (var e in executions)
            {
                // The thing's current execution (this one, or the one a retry replaces) leaves its status's count.
                current.Parameters["$j"].Value = e.JobId;
                current.Parameters["$t"].Value = e.Thing;
                if (current.ExecuteScalar() is string was)
                {
                    counts[(e.JobId, was)] = counts.GetValueOrDefault((e.JobId, was)) - 1;
                }

                counts[(e.JobId, e.Status)] = counts.GetValueOrDefault((e.JobId, e.Status)) + 1;
                if (e.ExecutionNumber > 1)
                {
                    older.Parameters["$j"].Value = e.JobId;
                    older.Parameters["$t"].Value = e.Thing;
                    older.Parameters["$n"].Value = e.ExecutionNumber;
                    older.ExecuteNonQuery();
                }

                var p = upsert.Parameters;
                p["$j"].Value = e.JobId;
                p["$t"].Value = e.Thing;
                p["$n"].Value = e.ExecutionNumber;
                p["$status"].Value = e.Status;
                p["$details"].Value = e.StatusDetails.Count == 0 ? "{}" : JsonSerializer.Serialize(new Dictionary<string, string>(e.StatusDetails, StringComparer.Ordinal), JobsJsonContext.Default.DictionaryStringString);
                p["$version"].Value = e.Version;
                p["$queued"].Value = e.QueuedMs;
                p["$started"].Value = (object?)e.StartedMs ?? DBNull.Value;
                p["$updated"].Value = e.UpdatedMs;
                p["$timeout"].Value = (object?)e.TimeoutAtMs ?? DBNull.Value;
                p["$force"].Value = e.ForceCanceled ? 1L : 0L;
                p["$retry"].Value = (long)e.RetryAttempt;
                upsert.ExecuteNonQuery();
            }

            AddCounts(connection, counts);
        }

        if (reached is { Count: > 0 } && (job?.JobId ?? executions.FirstOrDefault()?.JobId) is { } jobId)
        {
            using var delete = Command(connection, "DELETE FROM job_targets_pending WHERE job_id = $j AND thing = $t", ("$j", jobId), ("$t", ""));
            foreach (var thing in reached)
            {
                delete.Parameters["$t"].Value = thing;
                delete.ExecuteNonQuery();
            }
        }

        transaction.Commit();
    }

    public JobExecutionRecord? GetExecution(string jobId, string thing, long? executionNumber = null)
    {
        using var connection = db.Open();
        using var command = executionNumber is { } n
            ? Command(connection, $"SELECT {ExecutionColumns} FROM job_executions WHERE job_id = $j AND thing = $t AND execution_number = $n", ("$j", jobId), ("$t", thing), ("$n", n))
            : Command(connection, $"SELECT {ExecutionColumns} FROM job_executions WHERE job_id = $j AND thing = $t AND current = 1", ("$j", jobId), ("$t", thing));
        return ReadExecutions(command).FirstOrDefault();
    }

    public IReadOnlyList<JobExecutionRecord> PendingExecutions(string thing)
    {
        using var connection = db.Open();
        using var command = Command(connection, $"""
            SELECT {ExecutionColumns} FROM job_executions
            WHERE thing = $t AND current = 1 AND status IN ('{ExecutionStatus.Queued}', '{ExecutionStatus.InProgress}')
            ORDER BY queued_ms, job_id
            """, ("$t", thing));
        return ReadExecutions(command);
    }

    public IReadOnlyList<JobExecutionRecord> ExecutionsOfJob(string jobId, string? status, string? after, int limit)
    {
        using var connection = db.Open();
        using var command = Command(connection, $"""
            SELECT {ExecutionColumns} FROM job_executions
            WHERE job_id = $j AND current = 1 AND thing > $after AND ($status IS NULL OR status = $status)
            ORDER BY thing LIMIT $limit
            """, ("$j", jobId), ("$after", after ?? string.Empty), ("$status", status), ("$limit", limit));
        return ReadExecutions(command);
    }

    public IReadOnlyList<JobExecutionRecord> ExecutionsOfThing(string thing, string? status, string? after, int limit)
    {
        using var connection = db.Open();
        using var command = Command(connection, $"""
            SELECT {ExecutionColumns} FROM job_executions
            WHERE thing = $t AND current = 1 AND job_id > $after AND ($status IS NULL OR status = $status)
            ORDER BY job_id LIMIT $limit
            """, ("$t", thing), ("$after", after ?? string.Empty), ("$status", status), ("$limit", limit));
        return ReadExecutions(command);
    }

    public IReadOnlyList<JobExecutionRecord> PendingExecutionsOfJob(string jobId)
    {
        using var connection = db.Open();
        using var command = Command(connection, $"""
            SELECT {ExecutionColumns} FROM job_executions
            WHERE job_id = $j AND current = 1 AND status IN ('{ExecutionStatus.Queued}', '{ExecutionStatus.InProgress}')
            """, ("$j", jobId));
        return ReadExecutions(command);
    }

    public IReadOnlyDictionary<string, int> CountByStatus(string jobId)
    {
        using var connection = db.Open();
        using var command = Command(connection, "SELECT status, n FROM job_counts WHERE job_id = $j AND n > 0", ("$j", jobId));
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            counts[reader.GetString(0)] = reader.GetInt32(1);
        }

        return counts;
    }

    public int ReachedSince(string jobId, long sinceMs)
    {
        using var connection = db.Open();
        using var command = Command(connection, "SELECT COUNT(*) FROM job_executions WHERE job_id = $j AND execution_number = 1 AND queued_ms > $since", ("$j", jobId), ("$since", sinceMs));
        return Convert.ToInt32(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }

    public IReadOnlyList<JobExecutionRecord> DueTimeouts(long nowMs, int limit)
    {
        using var connection = db.Open();
        using var command = Command(connection, $"SELECT {ExecutionColumns} FROM job_executions WHERE timeout_at_ms IS NOT NULL AND timeout_at_ms <= $now ORDER BY timeout_at_ms LIMIT $limit",
            ("$now", nowMs), ("$limit", limit));
        return ReadExecutions(command);
    }

    public long? NextTimeoutMs()
    {
        using var connection = db.Open();
        using var command = Command(connection, "SELECT MIN(timeout_at_ms) FROM job_executions WHERE timeout_at_ms IS NOT NULL");
        return command.ExecuteScalar() is long ms ? ms : null;
    }

    public void DeleteExecution(string jobId, string thing, long executionNumber)
    {
        using var connection = db.Open();
        using var transaction = connection.BeginTransaction();
        var counts = new Dictionary<(string Job, string Status), long>();
        using (var was = Command(connection, "SELECT status FROM job_executions WHERE job_id = $j AND thing = $t AND current = 1", ("$j", jobId), ("$t", thing)))
        {
            if (was.ExecuteScalar() is string status)
            {
                counts[(jobId, status)] = -1;
            }
        }

        using (var delete = Command(connection, "DELETE FROM job_executions WHERE job_id = $j AND thing = $t AND execution_number = $n", ("$j", jobId), ("$t", thing), ("$n", executionNumber)))
        {
            delete.ExecuteNonQuery();
        }

        // The latest remaining execution, if any, becomes the current one again.
        using (var current = Command(connection, """
            UPDATE job_executions SET current = 1
            WHERE job_id = $j AND thing = $t AND execution_number = (SELECT MAX(execution_number) FROM job_executions WHERE job_id = $j AND thing = $t)
            """, ("$j", jobId), ("$t", thing)))
        {
            current.ExecuteNonQuery();
        }

        using (var now = Command(connection, "SELECT status FROM job_executions WHERE job_id = $j AND thing = $t AND current = 1", ("$j", jobId), ("$t", thing)))
        {
            if (now.ExecuteScalar() is string status)
            {
                counts[(jobId, status)] = counts.GetValueOrDefault((jobId, status)) + 1;
            }
        }

        AddCounts(connection, counts);
        transaction.Commit();
    }

    private static void AddCounts(SqliteConnection connection, Dictionary<(string Job, string Status), long> counts)
    {
        using var add = Command(connection, "INSERT INTO job_counts (job_id, status, n) VALUES ($j, $s, $n) ON CONFLICT (job_id, status) DO UPDATE SET n = n + excluded.n",
            ("$j", ""), ("$s", ""), ("$n", 0L));
        foreach (var ((job, status), n) in counts.Where(c => c.Value != 0))
        {
            add.Parameters["$j"].Value = job;
            add.Parameters["$s"].Value = status;
            add.Parameters["$n"].Value = n;
            add.ExecuteNonQuery();
        }
    }

    public bool InsertTemplate(JobTemplateRecord template)
    {
        using var connection = db.Open();
        using var command = Command(connection, """
            INSERT INTO job_templates (template_id, arn, description, document, settings, created_ms)
            VALUES ($id, $arn, $description, $document, $settings, $created) ON CONFLICT DO NOTHING
            """, ("$id", template.TemplateId), ("$arn", template.Arn), ("$description", template.Description), ("$document", template.Document),
            ("$settings", JsonSerializer.Serialize(template.Settings, JobsJsonContext.Default.JobSettings)), ("$created", template.CreatedMs));
        return command.ExecuteNonQuery() > 0;
    }

    public JobTemplateRecord? GetTemplate(string templateId)
    {
        using var connection = db.Open();
        using var command = Command(connection, "SELECT template_id, arn, description, document, settings, created_ms FROM job_templates WHERE template_id = $id", ("$id", templateId));
        return ReadTemplates(command).FirstOrDefault();
    }

    public IReadOnlyList<JobTemplateRecord> ListTemplates(string? after, int limit)
    {
        using var connection = db.Open();
        using var command = Command(connection, "SELECT template_id, arn, description, document, settings, created_ms FROM job_templates WHERE template_id > $after ORDER BY template_id LIMIT $limit",
            ("$after", after ?? string.Empty), ("$limit", limit));
        return ReadTemplates(command);
    }

    public bool DeleteTemplate(string templateId)
    {
        using var connection = db.Open();
        using var command = Command(connection, "DELETE FROM job_templates WHERE template_id = $id", ("$id", templateId));
        return command.ExecuteNonQuery() > 0;
    }

    private static void WriteJob(SqliteConnection connection, JobRecord job, bool insert)
    {
        var sql = insert
            ? $"INSERT INTO jobs ({JobColumns}) VALUES ($id, $arn, $status, $selection, $targets, $document, $source, $description, $settings, $reason, $comment, $force, $created, $updated, $completed, $rate, $mark)"
            : """
              UPDATE jobs SET status = $status, description = $description, settings = $settings, reason_code = $reason, comment = $comment,
                  force_canceled = $force, updated_ms = $updated, completed_ms = $completed, rate_per_minute = $rate, rate_mark = $mark
              WHERE job_id = $id
              """;
        using var command = Command(connection, sql,
            ("$id", job.JobId), ("$arn", job.Arn), ("$status", job.Status), ("$selection", job.TargetSelection),
            ("$targets", JsonSerializer.Serialize(job.Targets, JobsJsonContext.Default.IReadOnlyListString)), ("$document", job.Document),
            ("$source", job.SourceDocument), ("$description", job.Description), ("$settings", JsonSerializer.Serialize(job.Settings, JobsJsonContext.Default.JobSettings)),
            ("$reason", job.ReasonCode), ("$comment", job.Comment), ("$force", job.ForceCanceled ? 1L : 0L), ("$created", job.CreatedMs),
            ("$updated", job.UpdatedMs), ("$completed", job.CompletedMs), ("$rate", job.RatePerMinute), ("$mark", job.RateMark));
        command.ExecuteNonQuery();
    }

    private static List<JobRecord> ReadJobs(SqliteCommand command)
    {
        var jobs = new List<JobRecord>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            jobs.Add(new JobRecord
            {
                JobId = reader.GetString(0),
                Arn = reader.GetString(1),
                Status = reader.GetString(2),
                TargetSelection = reader.GetString(3),
                Targets = JsonSerializer.Deserialize(reader.GetString(4), JobsJsonContext.Default.IReadOnlyListString) ?? [],
                Document = reader.GetString(5),
                SourceDocument = reader.GetString(6),
                Description = reader.IsDBNull(7) ? null : reader.GetString(7),
                Settings = JsonSerializer.Deserialize(reader.GetString(8), JobsJsonContext.Default.JobSettings) ?? new(),
                ReasonCode = reader.IsDBNull(9) ? null : reader.GetString(9),
                Comment = reader.IsDBNull(10) ? null : reader.GetString(10),
                ForceCanceled = reader.GetInt64(11) != 0,
                CreatedMs = reader.GetInt64(12),
                UpdatedMs = reader.GetInt64(13),
                CompletedMs = reader.IsDBNull(14) ? null : reader.GetInt64(14),
                RatePerMinute = reader.GetDouble(15),
                RateMark = reader.GetInt64(16),
            });
        }

        return jobs;
    }

    private static List<JobExecutionRecord> ReadExecutions(SqliteCommand command)
    {
        var executions = new List<JobExecutionRecord>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            executions.Add(new JobExecutionRecord
            {
                JobId = reader.GetString(0),
                Thing = reader.GetString(1),
                ExecutionNumber = reader.GetInt64(2),
                Status = reader.GetString(3),
                StatusDetails = JsonSerializer.Deserialize(reader.GetString(4), JobsJsonContext.Default.DictionaryStringString) ?? [],
                Version = reader.GetInt64(5),
                QueuedMs = reader.GetInt64(6),
                StartedMs = reader.IsDBNull(7) ? null : reader.GetInt64(7),
                UpdatedMs = reader.GetInt64(8),
                TimeoutAtMs = reader.IsDBNull(9) ? null : reader.GetInt64(9),
                ForceCanceled = reader.GetInt64(10) != 0,
                RetryAttempt = reader.GetInt32(11),
            });
        }

        return executions;
    }

    private static List<JobTemplateRecord> ReadTemplates(SqliteCommand command)
    {
        var templates = new List<JobTemplateRecord>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            templates.Add(new JobTemplateRecord
            {
                TemplateId = reader.GetString(0),
                Arn = reader.GetString(1),
                Description = reader.GetString(2),
                Document = reader.GetString(3),
                Settings = JsonSerializer.Deserialize(reader.GetString(4), JobsJsonContext.Default.JobSettings) ?? new(),
                CreatedMs = reader.GetInt64(5),
            });
        }

        return templates;
    }
}
