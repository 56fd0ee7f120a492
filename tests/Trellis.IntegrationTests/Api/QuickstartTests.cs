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
        var result = await RunBlocksAsync(("README.md", "quickstart"));
        Assert.True(result.ExitCode == 0, result.Output);
        Assert.Equal("first message", result.Stdout.Trim().Split('\n')[^1]);
    }

    [Fact]
    public async Task Jobs_first_job_runs_after_the_quick_start_as_written()
    {
        var result = await RunBlocksAsync(("README.md", "quickstart"), ("docs/jobs.md", "jobs-quickstart"));
        Assert.True(result.ExitCode == 0, result.Output);
        var lines = result.Stdout.Trim().Split('\n');
        Assert.Equal("COMPLETED", lines[^1]);
        Assert.Contains(lines, l => l.Contains("\"status\":\"IN_PROGRESS\"", StringComparison.Ordinal) && l.Contains("\"blink\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Ota_doc_uploads_signs_checks_with_openssl_makes_a_delta_zstd_rebuilds_and_an_update_job_is_made()
    {
        var result = await RunBlocksAsync(("README.md", "quickstart"), ("docs/ota.md", "ota-upload"), ("docs/ota.md", "ota-sign"),
            ("docs/ota.md", "ota-sign-elsewhere"), ("docs/ota.md", "ota-delta"), ("docs/ota.md", "ota-job"), ("docs/ota.md", "ota-stream"));
        Assert.True(result.ExitCode == 0, result.Output);
        Assert.Contains("Verified OK", result.Output, StringComparison.Ordinal);
        Assert.Contains("\nsame\n", result.Stdout, StringComparison.Ordinal);
        Assert.True(result.Stdout.Contains("sig-sha256-ecdsa", StringComparison.Ordinal), result.Output);
        Assert.Contains("\"streamVersion\": 1", result.Stdout, StringComparison.Ordinal);
    }

    /// <summary>Runs the marked shell blocks of the given documents, in order, as one script against the test server.</summary>
    private async Task<ExternalTool.Result> RunBlocksAsync(params (string Document, string Marker)[] blocks)
    {
        var ct = TestContext.Current.CancellationToken;
        var script = new System.Text.StringBuilder();
        foreach (var (document, marker) in blocks)
        {
            var text = await File.ReadAllTextAsync(Path.Combine(RepositoryRoot(), document), ct);
            var begin = text.IndexOf($"<!-- {marker}:begin -->", StringComparison.Ordinal);
            var end = text.IndexOf($"<!-- {marker}:end -->", StringComparison.Ordinal);
            Assert.True(begin > 0 && end > begin, $"{document} has no {marker} block");
            script.AppendJoin('\n', text[begin..end].Split('\n').Where(l => !l.StartsWith("```", StringComparison.Ordinal) && !l.StartsWith("<!--", StringComparison.Ordinal))).Append('\n');
        }

        var workDir = Path.Combine(_host.DataDirectory, "quickstart-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(workDir);
        File.CreateSymbolicLink(Path.Combine(workDir, "data"), _host.DataDirectory);
        File.CreateSymbolicLink(Path.Combine(workDir, "trellis"), Path.Combine(RepositoryRoot(), "trellis")); // docs run ./trellis from the repository root
        var scriptPath = Path.Combine(workDir, "quickstart.sh");
        await File.WriteAllTextAsync(scriptPath, "set -euo pipefail\ncd " + workDir + "\n" + script, ct);
        return await ExternalTool.RunAsync("bash", [scriptPath], TimeSpan.FromSeconds(90), new Dictionary<string, string>
        {
            ["TRELLIS_API"] = _host.Endpoint,
            ["TRELLIS_ENDPOINT"] = _host.Endpoint,
            ["TRELLIS_MQTTS_PORT"] = _host.MqttsPort.ToString(CultureInfo.InvariantCulture),
        }, ct);
    }

    private static string RepositoryRoot() => TrellisCli.RepositoryRoot();
}
