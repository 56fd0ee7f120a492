using Trellis.Device;

namespace Trellis.UnitTests.Device;

/// <summary>A device's private key on disk: its owner's alone, whatever was there before, with nothing left beside it.</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class IdentityFilesTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("trellis-identity-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task A_private_key_is_written_for_its_owner_only_and_replaces_an_older_one()
    {
        var path = Path.Combine(_folder, "pump-1.private.key");
        await File.WriteAllTextAsync(path, "old key", TestContext.Current.CancellationToken);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        IdentityFiles.WritePrivate(path, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.Equal("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", await File.ReadAllTextAsync(path, TestContext.Current.CancellationToken));
        Assert.Equal([path], Directory.GetFiles(_folder));
    }
}
