using System.Globalization;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary>Runs the README's quick start as written, so the README cannot drift from the product.</summary>
public sealed class QuickstartTests : IAsyncLifetime
{
    private readonly TrellisHost _host = new();

    public ValueTask InitializeAsync() => _host.InitializeAsync();

    public ValueTask DisposeAsync() => _host.DisposeAsync();

    [Fact]
    public async Task Readme_quick_start_provisions_a_device_that_sends_its_first_message()
    {
        var ct = TestContext.Current.CancellationToken;
        var readme = await File.ReadAllTextAsync(Path.Combine(RepositoryRoot(), "README.md"), ct);
        var begin = readme.IndexOf("<!-- quickstart:begin -->", StringComparison.Ordinal);
        var end = readme.IndexOf("<!-- quickstart:end -->", StringComparison.Ordinal);
        Assert.True(begin > 0 && end > begin, "README.md has no quickstart block");
        var script = string.Join('\n', readme[begin..end].Split('\n').Where(l => !l.StartsWith("```", StringComparison.Ordinal) && !l.StartsWith("<!--", StringComparison.Ordinal)));
        var workDir = Path.Combine(_host.DataDirectory, "quickstart");
        Directory.CreateDirectory(workDir);
        File.CreateSymbolicLink(Path.Combine(workDir, "data"), _host.DataDirectory);
        var scriptPath = Path.Combine(workDir, "quickstart.sh");
        await File.WriteAllTextAsync(scriptPath, "set -euo pipefail\ncd " + workDir + "\n" + script, ct);

        var result = await ExternalTool.RunAsync("bash", [scriptPath], TimeSpan.FromSeconds(90), new Dictionary<string, string>
        {
            ["TRELLIS_API"] = _host.Endpoint,
            ["TRELLIS_MQTTS_PORT"] = _host.MqttsPort.ToString(CultureInfo.InvariantCulture),
        }, ct);

        Assert.True(result.ExitCode == 0, result.Output);
        Assert.Equal("first message", result.Stdout.Trim().Split('\n')[^1]);
    }

    private static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Trellis.slnx")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("repository root (Trellis.slnx) not found above " + AppContext.BaseDirectory);
    }
}
