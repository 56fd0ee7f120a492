namespace Trellis.IntegrationTests.TestKit;

/// <summary>
/// The <c>trellis</c> command the tests run as a process: the build (<c>dotnet
/// artifacts/bin/Trellis.Cli/release/trellis.dll</c>), or the program that TRELLIS_TEST_COMMAND
/// names, so that a release form (the ReadyToRun or Native AOT publish) runs the same tests:
/// <c>TRELLIS_TEST_COMMAND=artifacts/publish/aot/trellis dotnet test …</c>.
/// </summary>
public static class TrellisCli
{
    private static readonly string? Published = Environment.GetEnvironmentVariable("TRELLIS_TEST_COMMAND") is { Length: > 0 } command
        ? Path.GetFullPath(command, RepositoryRoot())
        : null;

    /// <summary>What to start: TRELLIS_TEST_COMMAND's program, or <c>dotnet</c>.</summary>
    public static string FileName => Published ?? "dotnet";

    /// <summary>The arguments before the command's own: the build's <c>trellis.dll</c> for <c>dotnet</c>, none for a published program.</summary>
    public static IReadOnlyList<string> Leading => Published is null ? [DllPath()] : [];

    /// <summary>The repository's root: the folder above the tests that holds Trellis.slnx.</summary>
    public static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Trellis.slnx")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("repository root (Trellis.slnx) not found above " + AppContext.BaseDirectory);
    }

    public static string DllPath()
    {
        var dll = Path.Combine(RepositoryRoot(), "artifacts", "bin", "Trellis.Cli", "release", "trellis.dll");
        Assert.True(File.Exists(dll), $"{dll} is missing: build Trellis.slnx -c Release first");
        return dll;
    }

    /// <summary>Runs <c>trellis ARGS</c> against <paramref name="host"/>'s API with the credentials of its data folder.</summary>
    public static Task<ExternalTool.Result> RunAsync(TrellisHost host, IEnumerable<string> args, CancellationToken cancellationToken) =>
        ExternalTool.RunAsync(FileName, [.. Leading, .. args, "--endpoint", host.Endpoint, "--data", host.DataDirectory], TimeSpan.FromSeconds(60), new Dictionary<string, string> { ["AWS_PROFILE"] = "trellis" }, cancellationToken);
}
