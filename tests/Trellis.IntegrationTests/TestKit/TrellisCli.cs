namespace Trellis.IntegrationTests.TestKit;

/// <summary>The built <c>trellis</c> command (artifacts/bin/Trellis.Cli/release/trellis.dll).</summary>
public static class TrellisCli
{
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
        ExternalTool.RunAsync("dotnet", [DllPath(), .. args, "--endpoint", host.Endpoint, "--data", host.DataDirectory], TimeSpan.FromSeconds(60), new Dictionary<string, string> { ["AWS_PROFILE"] = "trellis" }, cancellationToken);
}
