using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Trellis.Core.Errors;
using Trellis.Storage;
using static Trellis.Storage.SqliteCommands;

namespace Trellis.Jobs.Firmware;

/// <summary>
/// Images as files named by their SHA-256 under <c>data/firmware/</c>, names in jobs.db. An upload
/// is written to a temporary file while it is hashed, flushed to disk, then renamed into place and
/// only then recorded: a crash leaves either the whole image or nothing.
/// </summary>
public sealed partial class FileFirmwareStore(SqliteDatabase db, string directory, TimeProvider time) : IFirmwareStore
{
    /// <summary>jobs.db's migration that adds the firmware table (appended to <see cref="SqliteJobStore.Migrations"/>).</summary>
    internal const string Migration = """
        CREATE TABLE firmware (
            name TEXT PRIMARY KEY,
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            description TEXT,
            created_ms INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX firmware_sha256 ON firmware (sha256);
        """;

    /// <summary>jobs.db's migration that adds signatures and delta images.</summary>
    internal const string SigningAndDeltasMigration = """
        ALTER TABLE firmware ADD COLUMN signature TEXT;
        ALTER TABLE firmware ADD COLUMN signer_certificate TEXT;
        CREATE TABLE firmware_deltas (
            from_sha256 TEXT NOT NULL,
            to_sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            created_ms INTEGER NOT NULL,
            PRIMARY KEY (from_sha256, to_sha256)
        ) WITHOUT ROWID;
        CREATE INDEX firmware_deltas_to ON firmware_deltas (to_sha256);
        """;

    /// <summary>jobs.db's migration that adds AWS IoT streams (files served in blocks over MQTT).</summary>
    internal const string StreamsMigration = """
        CREATE TABLE streams (
            stream_id TEXT PRIMARY KEY,
            arn TEXT NOT NULL,
            description TEXT,
            files TEXT NOT NULL,
            role_arn TEXT,
            version INTEGER NOT NULL,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL
        ) WITHOUT ROWID;
        """;

    private const string StreamColumns = "stream_id, arn, description, files, role_arn, version, created_ms, updated_ms";

    private const string Columns = "name, sha256, size, description, created_ms, signature, signer_certificate";

    public static bool IsValidName(string name) => NamePattern().IsMatch(name);

    public async Task<Result<FirmwareRecord>> AddAsync(string name, Stream content, string? expectedSha256, string? description, long maxBytes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(content);
        if (!IsValidName(name))
        {
            return new TrellisError.InvalidRequest($"'{name}' is not a firmware name: 1 to 128 letters, digits, '.', '_' or '-', not starting with '.'.");
        }

        if (Get(name) is not null)
        {
            return new TrellisError.AlreadyExists($"Firmware '{name}' exists already: upload the new image under a new name (e.g. with its version).", name);
        }

        Directory.CreateDirectory(directory);
        var temporary = Path.Combine(directory, $".upload-{Guid.NewGuid():N}");
        try
        {
            long size = 0;
            string sha256;
            using (var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
            {
                await using (var file = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
                {
                    var buffer = new byte[1 << 16];
                    int read;
                    while ((read = await content.ReadAsync(buffer, cancellationToken)) > 0)
                    {
                        size += read;
                        if (size > maxBytes)
                        {
                            return new TrellisError.RequestEntityTooLarge($"The image is larger than {maxBytes} bytes, the most Trellis takes (TRELLIS_Api__MaxFirmwareBytes).");
                        }

                        hash.AppendData(buffer, 0, read);
                        await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                    }

                    await file.FlushAsync(cancellationToken);
                    file.Flush(flushToDisk: true);
                }

                sha256 = Convert.ToHexStringLower(hash.GetHashAndReset());
            }

            if (expectedSha256 is not null && !string.Equals(expectedSha256, sha256, StringComparison.OrdinalIgnoreCase))
            {
                return new TrellisError.InvalidRequest($"The image's SHA-256 is {sha256}, not the {expectedSha256} the request declared: it was cut or changed on the way. Nothing was kept.");
            }

            var target = Path.Combine(directory, sha256);
            if (File.Exists(target))
            {
                File.Delete(temporary); // the same bytes are stored already
            }
            else
            {
                File.Move(temporary, target);
            }

            var record = new FirmwareRecord(name, sha256, size, description, time.GetUtcNow().ToUnixTimeMilliseconds());
            using var connection = db.Open();
            using var insert = Command(connection, "INSERT INTO firmware (name, sha256, size, description, created_ms) VALUES ($n, $h, $s, $d, $c) ON CONFLICT DO NOTHING",
                ("$n", name), ("$h", sha256), ("$s", size), ("$d", description), ("$c", record.CreatedMs));
            return await insert.ExecuteNonQueryAsync(cancellationToken) > 0 ? record : new TrellisError.AlreadyExists($"Firmware '{name}' exists already.", name);
        }
        finally
        {
            if (File.Exists(temporary))
            {
                File.Delete(temporary);
            }
        }
    }

    public FirmwareRecord? Get(string name)
    {
        using var connection = db.Open();
        using var command = Command(connection, $"SELECT {Columns} FROM firmware WHERE name = $n", ("$n", name));
        return Read(command).FirstOrDefault();
    }

    public IReadOnlyList<FirmwareRecord> List(string? after, int limit)
    {
        using var connection = db.Open();
        using var command = Command(connection, $"SELECT {Columns} FROM firmware WHERE name > $a ORDER BY name LIMIT $l", ("$a", after ?? string.Empty), ("$l", limit));
        return Read(command);
    }

    public bool Delete(string name)
    {
        if (Get(name) is not { } firmware)
        {
            return false;
        }

        using var connection = db.Open();
        using (var delete = Command(connection, "DELETE FROM firmware WHERE name = $n", ("$n", name)))
        {
            delete.ExecuteNonQuery();
        }

        using var others = Command(connection, "SELECT COUNT(*) FROM firmware WHERE sha256 = $h", ("$h", firmware.Sha256));
        if ((long)others.ExecuteScalar()! == 0)
        {
            File.Delete(PathOf(firmware));
            using var deltas = Command(connection, "DELETE FROM firmware_deltas WHERE from_sha256 = $h OR to_sha256 = $h RETURNING from_sha256, to_sha256, size, created_ms", ("$h", firmware.Sha256));
            foreach (var delta in ReadDeltas(deltas))
            {
                File.Delete(PathOf(delta));
            }
        }

        return true;
    }

    public bool SetSignature(string name, string signature, string signerCertificate)
    {
        using var connection = db.Open();
        using var update = Command(connection, "UPDATE firmware SET signature = $s, signer_certificate = $c WHERE name = $n", ("$n", name), ("$s", signature), ("$c", signerCertificate));
        return update.ExecuteNonQuery() > 0;
    }

    public async Task<Result<FirmwareDeltaRecord>> AddDeltaAsync(FirmwareRecord from, FirmwareRecord to, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(to);
        if (from.Size > FirmwareDelta.MaxImageBytes || to.Size > FirmwareDelta.MaxImageBytes)
        {
            return new TrellisError.InvalidRequest($"Delta images are made for images up to {FirmwareDelta.MaxImageBytes >> 20} MiB (both sit in memory while the patch is computed); devices download the full image instead.");
        }

        if (from.Sha256 == to.Sha256)
        {
            return new TrellisError.InvalidRequest($"'{from.Name}' and '{to.Name}' are the same bytes: there is nothing to patch.");
        }

        var oldBytes = await File.ReadAllBytesAsync(PathOf(from), cancellationToken);
        var newBytes = await File.ReadAllBytesAsync(PathOf(to), cancellationToken);
        var patch = await Task.Run(() => FirmwareDelta.Create(oldBytes, newBytes), cancellationToken);
        var delta = new FirmwareDeltaRecord(from.Sha256, to.Sha256, patch.Length, time.GetUtcNow().ToUnixTimeMilliseconds());
        var target = PathOf(delta);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        var temporary = target + ".tmp";
        await using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
        {
            await file.WriteAsync(patch, cancellationToken);
            await file.FlushAsync(cancellationToken);
            file.Flush(flushToDisk: true);
        }

        File.Move(temporary, target, overwrite: true);
        using var connection = db.Open();
        using var insert = Command(connection, """
            INSERT INTO firmware_deltas (from_sha256, to_sha256, size, created_ms) VALUES ($f, $t, $s, $c)
            ON CONFLICT (from_sha256, to_sha256) DO UPDATE SET size = excluded.size, created_ms = excluded.created_ms
            """, ("$f", delta.FromSha256), ("$t", delta.ToSha256), ("$s", delta.Size), ("$c", delta.CreatedMs));
        await insert.ExecuteNonQueryAsync(cancellationToken);
        return delta;
    }

    public FirmwareDeltaRecord? GetDelta(string fromSha256, string toSha256)
    {
        using var connection = db.Open();
        using var command = Command(connection, "SELECT from_sha256, to_sha256, size, created_ms FROM firmware_deltas WHERE from_sha256 = $f AND to_sha256 = $t", ("$f", fromSha256), ("$t", toSha256));
        return ReadDeltas(command).FirstOrDefault();
    }

    public IReadOnlyList<FirmwareDeltaRecord> DeltasTo(string toSha256)
    {
        using var connection = db.Open();
        using var command = Command(connection, "SELECT from_sha256, to_sha256, size, created_ms FROM firmware_deltas WHERE to_sha256 = $t ORDER BY from_sha256", ("$t", toSha256));
        return ReadDeltas(command);
    }

    public string PathOf(FirmwareDeltaRecord delta)
    {
        ArgumentNullException.ThrowIfNull(delta);
        return Path.Combine(directory, "deltas", $"{delta.FromSha256}-{delta.ToSha256}.zst");
    }

    public bool SaveStream(StreamRecord stream, bool create)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var files = System.Text.Json.JsonSerializer.Serialize(stream.Files, JobsJsonContext.Default.IReadOnlyListStreamFileRecord);
        using var connection = db.Open();
        using var save = create
            ? Command(connection, $"INSERT INTO streams ({StreamColumns}) VALUES ($id, $arn, $d, $f, $r, $v, $c, $u) ON CONFLICT DO NOTHING",
                ("$id", stream.StreamId), ("$arn", stream.Arn), ("$d", stream.Description), ("$f", files), ("$r", stream.RoleArn), ("$v", stream.Version), ("$c", stream.CreatedMs), ("$u", stream.UpdatedMs))
            : Command(connection, "UPDATE streams SET description = $d, files = $f, role_arn = $r, version = $v, updated_ms = $u WHERE stream_id = $id",
                ("$id", stream.StreamId), ("$d", stream.Description), ("$f", files), ("$r", stream.RoleArn), ("$v", stream.Version), ("$u", stream.UpdatedMs));
        return save.ExecuteNonQuery() > 0;
    }

    public StreamRecord? GetStream(string streamId)
    {
        using var connection = db.Open();
        using var command = Command(connection, $"SELECT {StreamColumns} FROM streams WHERE stream_id = $id", ("$id", streamId));
        return ReadStreams(command).FirstOrDefault();
    }

    public IReadOnlyList<StreamRecord> ListStreams(string? after, int limit, bool ascending)
    {
        using var connection = db.Open();
        using var command = ascending || after is null
            ? Command(connection, $"SELECT {StreamColumns} FROM streams WHERE stream_id > $a ORDER BY stream_id {(ascending ? "ASC" : "DESC")} LIMIT $l", ("$a", ascending ? after ?? string.Empty : string.Empty), ("$l", limit))
            : Command(connection, $"SELECT {StreamColumns} FROM streams WHERE stream_id < $a ORDER BY stream_id DESC LIMIT $l", ("$a", after), ("$l", limit));
        return ReadStreams(command);
    }

    public bool DeleteStream(string streamId)
    {
        using var connection = db.Open();
        using var delete = Command(connection, "DELETE FROM streams WHERE stream_id = $id", ("$id", streamId));
        return delete.ExecuteNonQuery() > 0;
    }

    private static List<StreamRecord> ReadStreams(Microsoft.Data.Sqlite.SqliteCommand command)
    {
        var list = new List<StreamRecord>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            var files = System.Text.Json.JsonSerializer.Deserialize(reader.GetString(3), JobsJsonContext.Default.IReadOnlyListStreamFileRecord) ?? [];
            list.Add(new StreamRecord(reader.GetString(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2), files,
                reader.IsDBNull(4) ? null : reader.GetString(4), reader.GetInt32(5), reader.GetInt64(6), reader.GetInt64(7)));
        }

        return list;
    }

    private static List<FirmwareDeltaRecord> ReadDeltas(Microsoft.Data.Sqlite.SqliteCommand command)
    {
        var list = new List<FirmwareDeltaRecord>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            list.Add(new FirmwareDeltaRecord(reader.GetString(0), reader.GetString(1), reader.GetInt64(2), reader.GetInt64(3)));
        }

        return list;
    }

    public string PathOf(FirmwareRecord firmware)
    {
        ArgumentNullException.ThrowIfNull(firmware);
        return Path.Combine(directory, firmware.Sha256);
    }

    private static List<FirmwareRecord> Read(Microsoft.Data.Sqlite.SqliteCommand command)
    {
        var list = new List<FirmwareRecord>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            list.Add(new FirmwareRecord(reader.GetString(0), reader.GetString(1), reader.GetInt64(2), reader.IsDBNull(3) ? null : reader.GetString(3), reader.GetInt64(4),
                reader.IsDBNull(5) ? null : reader.GetString(5), reader.IsDBNull(6) ? null : reader.GetString(6)));
        }

        return list;
    }

    [GeneratedRegex("^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$", RegexOptions.CultureInvariant)]
    private static partial Regex NamePattern();
}
