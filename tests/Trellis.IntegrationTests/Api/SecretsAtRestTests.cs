using System.Text;
using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary>
/// What a real <c>trellis serve</c> leaves on disk: a data folder only its user can enter, every
/// file in it private (databases, their WAL files, keys, the time-series store), and API users'
/// secrets sealed with the folder's secrets.key, so a copy of trellis.db is not a copy of the keys.
/// Secrets an earlier version stored in plain text are sealed at the next start and keep working.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class SecretsAtRestTests : IDisposable
{
    private readonly string _data = Path.Combine(Path.GetTempPath(), $"trellis-secrets-{Guid.NewGuid():N}");

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task The_data_folder_is_private_and_api_secrets_are_sealed()
    {
        string keyId, secret;
        using (var server = await ServerProcess.StartAsync(_data, Ct))
        {
            var created = await SignedAsync(server, "POST", "/api/users", """{"name":"auditor","role":"viewer"}""", null);
            Assert.True(created["status"]!.GetValue<int>() == 200, created.ToJsonString());
            keyId = created["body"]!["accessKeyId"]!.GetValue<string>();
            secret = created["body"]!["secretAccessKey"]!.GetValue<string>();
            Assert.Equal(200, (await SignedAsync(server, "GET", "/things", null, (keyId, secret)))["status"]!.GetValue<int>());

            AssertPrivate();
            Assert.Contains(Directory.EnumerateFiles(_data), f => f.EndsWith("-wal", StringComparison.Ordinal)); // made by SQLite, private by the umask
            foreach (var file in Directory.EnumerateFiles(_data, "trellis.db*"))
            {
                Assert.False(Contains(file, secret), $"{Path.GetFileName(file)} holds the secret in plain text");
            }

            // A secret stored in plain text (as before this change) by someone with the database.
            Assert.Equal(0, await server.TerminateAsync(Ct));
        }

        var legacy = await ExternalTool.RunAsync("python3", ["-c", $"""
            import sqlite3
            db = sqlite3.connect("{Path.Combine(_data, "trellis.db")}")
            db.execute("INSERT INTO api_users(access_key_id, secret, name, role, created_ms) VALUES ('TRLSLEGACYKEY0000001', 'legacy-plain-secret', 'legacy', 'viewer', 0)")
            db.commit()
            """], TimeSpan.FromSeconds(30), cancellationToken: Ct);
        Assert.True(legacy.ExitCode == 0, legacy.Output);

        using (var again = await ServerProcess.StartAsync(_data, Ct))
        {
            Assert.Equal(200, (await SignedAsync(again, "GET", "/things", null, (keyId, secret)))["status"]!.GetValue<int>());
            Assert.Equal(200, (await SignedAsync(again, "GET", "/things", null, ("TRLSLEGACYKEY0000001", "legacy-plain-secret")))["status"]!.GetValue<int>());
            Assert.Equal(0, await again.TerminateAsync(Ct));
        }

        foreach (var file in Directory.EnumerateFiles(_data, "trellis.db*"))
        {
            Assert.False(Contains(file, "legacy-plain-secret") || Contains(file, secret), $"{Path.GetFileName(file)} still holds a secret in plain text");
        }

        AssertPrivate();

        // Without the folder's secrets.key the sealed secrets do not open: the server refuses to start and says why.
        File.Delete(Path.Combine(_data, "secrets.key"));
        var withoutKey = await ExternalTool.RunAsync(TrellisCli.FileName, [.. TrellisCli.Leading, "serve", "--data", _data, "--mqtt", "127.0.0.1:0", "--mqtts", "off", "--ws", "off", "--coap", "off", "--coaps", "off", "--http", "127.0.0.1:0"], TimeSpan.FromSeconds(60), cancellationToken: Ct);
        Assert.True(withoutKey.ExitCode is not (0 or -1), withoutKey.Output);
        Assert.Contains("secrets.key", withoutKey.Output, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_data, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private void AssertPrivate()
    {
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(_data));
        var entries = new DirectoryInfo(_data).EnumerateFileSystemInfos("*", SearchOption.AllDirectories).ToList();
        var names = string.Join(", ", entries.Select(e => e.Name));
        Assert.True(entries.Any(e => e.Name == "secrets.key") && entries.Any(e => e.Name == "sessions.db") && entries.Any(e => e.Name == "ca.key" || e.Name.EndsWith(".key", StringComparison.Ordinal) && e.FullName.Contains("/pki/", StringComparison.Ordinal)), names);
        foreach (var entry in entries)
        {
            var others = entry.UnixFileMode & (UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute);
            Assert.True(others == 0, $"{entry.FullName} is {entry.UnixFileMode}: others may use it");
        }
    }

    private static bool Contains(string file, string text)
    {
        using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray().AsSpan().IndexOf(Encoding.UTF8.GetBytes(text)) >= 0;
    }

    private static Task<JsonNode> SignedAsync(ServerProcess server, string method, string path, string? body, (string KeyId, string Secret)? credentials) =>
        server.SignedAsync(method, path, body, Ct, credentials);
}
