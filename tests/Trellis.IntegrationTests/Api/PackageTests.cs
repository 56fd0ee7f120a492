using System.Globalization;
using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary>
/// The Debian package from scripts/package.sh, installed with dpkg -i on this machine and started
/// as its systemd unit says: with systemctl where systemd runs, else (a CI container) the unit's own
/// ExecStart, User, Environment, EnvironmentFile and UMask applied by hand. The service answers
/// the AWS CLI and trellis, keeps its data private to its user, and the package purges cleanly.
/// Under scripts/test.sh the package is built in the background while the other tests run
/// (TRELLIS_TEST_PACKAGE_BUILD); run alone, the test builds it.
/// </summary>
public sealed class PackageTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task The_debian_package_installs_runs_as_its_own_user_with_private_data_and_purges()
    {
        var ct = TestContext.Current.CancellationToken;
        var root = TrellisCli.RepositoryRoot();
        var sudo = Environment.UserName == "root" ? Array.Empty<string>() : ["sudo", "-n"];
        Task<ExternalTool.Result> AsRootAsync(params string[] command) =>
            ExternalTool.RunAsync(sudo.Length > 0 ? sudo[0] : command[0], sudo.Length > 0 ? [.. sudo[1..], .. command] : command[1..], Timeout, cancellationToken: ct);

        var before = await ExternalTool.RunAsync("dpkg-query", ["-W", "-f=${Status}", "trellis"], Timeout, cancellationToken: ct);
        Assert.False(before.Stdout.Contains("install ok installed", StringComparison.Ordinal), "a trellis package is installed on this machine already: the test would replace it");

        var built = Environment.GetEnvironmentVariable("TRELLIS_TEST_PACKAGE_BUILD") is { Length: > 0 } folder
            ? await BackgroundBuildAsync(folder, ct)
            : await ExternalTool.RunAsync(Path.Combine(root, "scripts", "package.sh"), [], TimeSpan.FromMinutes(15), cancellationToken: ct);
        Assert.True(built.ExitCode == 0, built.Output);
        var deb = built.Stdout.Trim().Split('\n')[^1];
        Assert.True(File.Exists(deb), built.Output);

        var (http, mqtt) = (HttpReceiver.FreePort(), HttpReceiver.FreePort());
        ExternalTool.Background? service = null;
        try
        {
            var installed = await AsRootAsync("dpkg", "-i", deb);
            Assert.True(installed.ExitCode == 0, installed.Output);
            Assert.Equal("trellis", (await ExternalTool.RunCheckedAsync("stat", ["-c", "%U", "/var/lib/trellis"], Timeout, cancellationToken: ct)).Stdout.Trim());
            Assert.Equal("700", (await ExternalTool.RunCheckedAsync("stat", ["-c", "%a", "/var/lib/trellis"], Timeout, cancellationToken: ct)).Stdout.Trim());
            var verified = await ExternalTool.RunAsync("systemd-analyze", ["verify", "/lib/systemd/system/trellis.service"], Timeout, cancellationToken: ct);
            Assert.True(verified.ExitCode == 0, verified.Output);

            // The service's settings file, as an operator edits it: loopback ports for the test.
            var settings = $"TRELLIS_HTTP=127.0.0.1:{http}\nTRELLIS_MQTT=127.0.0.1:{mqtt}\nTRELLIS_MQTTS=127.0.0.1:0\nTRELLIS_WS=127.0.0.1:0\nTRELLIS_COAP=127.0.0.1:0\nTRELLIS_COAPS=127.0.0.1:0\n";
            var written = await AsRootAsync("sh", "-c", $"printf '{settings.Replace("\n", "\\n", StringComparison.Ordinal)}' > /etc/default/trellis");
            Assert.True(written.ExitCode == 0, written.Output);

            if (Directory.Exists("/run/systemd/system"))
            {
                var started = await AsRootAsync("systemctl", "restart", "trellis");
                Assert.True(started.ExitCode == 0, started.Output);
            }
            else
            {
                service = ExternalTool.StartBackground(sudo.Length > 0 ? "sudo" : "runuser", [.. sudo.Length > 0 ? ["-n", "runuser"] : Array.Empty<string>(), .. UnitCommand(await File.ReadAllTextAsync("/lib/systemd/system/trellis.service", ct), settings)]);
            }

            var endpoint = $"http://127.0.0.1:{http.ToString(CultureInfo.InvariantCulture)}";
            using var client = new HttpClient();
            Assert.True(await Eventually.TrueAsync(async () =>
            {
                try
                {
                    return (await client.GetAsync(endpoint + "/readyz", ct)).IsSuccessStatusCode;
                }
                catch (HttpRequestException)
                {
                    return false;
                }
            }, Timeout, ct), "the service did not become ready: " + string.Join('\n', service?.Lines ?? []) + service?.Stderr);

            // Managed from the same machine with the data folder's admin key (root may read it).
            var thing = await AsRootAsync("/usr/bin/trellis", "things", "create", "packaged-device", "--endpoint", endpoint, "--data", "/var/lib/trellis", "--output", "json");
            Assert.True(thing.ExitCode == 0, thing.Output);
            var aws = await AsRootAsync("env", "AWS_SHARED_CREDENTIALS_FILE=/var/lib/trellis/credentials", "AWS_PROFILE=trellis", "AWS_DEFAULT_REGION=us-east-1",
                "aws", "iot", "describe-thing", "--thing-name", "packaged-device", "--endpoint-url", endpoint, "--output", "json");
            Assert.True(aws.ExitCode == 0, aws.Output);
            Assert.Equal("packaged-device", JsonNode.Parse(aws.Stdout)!["thingName"]!.GetValue<string>());

            // Everything the service wrote is its own and private.
            var files = await AsRootAsync("find", "/var/lib/trellis", "-maxdepth", "1", "-type", "f", "-printf", "%u %m %f\n");
            Assert.True(files.ExitCode == 0, files.Output);
            var lines = files.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Contains(lines, l => l.EndsWith(" trellis.db", StringComparison.Ordinal));
            Assert.All(lines, l => Assert.StartsWith("trellis 600 ", l, StringComparison.Ordinal));
        }
        finally
        {
            if (Directory.Exists("/run/systemd/system"))
            {
                await AsRootAsync("systemctl", "stop", "trellis");
            }

            if (service is not null)
            {
                await AsRootAsync("pkill", "-TERM", "-u", "trellis", "-f", "/usr/lib/trellis/trellis");
                await service.WaitForExitAsync(TimeSpan.FromSeconds(20), ct);
                service.Dispose();
            }

            var purged = await AsRootAsync("dpkg", "--purge", "trellis");
            Assert.True(purged.ExitCode == 0, purged.Output);
            Assert.False(File.Exists("/usr/bin/trellis") || Directory.Exists("/usr/lib/trellis"), "dpkg --purge left the program behind");
            await AsRootAsync("rm", "-rf", "/var/lib/trellis"); // the package keeps it on purge, by design; the test does not
            await AsRootAsync("deluser", "--system", "--quiet", "trellis");
        }
    }

    /// <summary>
    /// The result of scripts/package.sh as scripts/test.sh runs it in the background while the other
    /// tests run: its exit code, stdout and stderr in <paramref name="folder"/>, once it has ended.
    /// </summary>
    private static async Task<ExternalTool.Result> BackgroundBuildAsync(string folder, CancellationToken ct)
    {
        var exitCode = Path.Combine(folder, "exit-code");
        var ended = await Eventually.TrueAsync(() => File.Exists(exitCode), TimeSpan.FromMinutes(20), ct);
        var stdout = File.Exists(Path.Combine(folder, "stdout")) ? await File.ReadAllTextAsync(Path.Combine(folder, "stdout"), ct) : string.Empty;
        var stderr = File.Exists(Path.Combine(folder, "stderr")) ? await File.ReadAllTextAsync(Path.Combine(folder, "stderr"), ct) : string.Empty;
        Assert.True(ended, $"scripts/package.sh, started by scripts/test.sh in the background, has not ended after 20 minutes (its output in {folder}):\n{stdout}{stderr}");
        return new ExternalTool.Result(int.Parse((await File.ReadAllTextAsync(exitCode, ct)).Trim(), CultureInfo.InvariantCulture), stdout, stderr);
    }

    /// <summary>
    /// What systemd would run for the unit: its ExecStart as its User, with only its Environment and
    /// the EnvironmentFile's variables, under its UMask (runuser arguments).
    /// </summary>
    private static List<string> UnitCommand(string unit, string environmentFile)
    {
        string Value(string key) => unit.Split('\n').Select(l => l.Trim()).First(l => l.StartsWith(key + "=", StringComparison.Ordinal))[(key.Length + 1)..];
        var environment = unit.Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith("Environment=", StringComparison.Ordinal)).Select(l => l["Environment=".Length..])
            .Concat(environmentFile.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            .Append("PATH=/usr/sbin:/usr/bin:/sbin:/bin");
        return ["-u", Value("User"), "--", "env", "-i", .. environment, "sh", "-c", $"umask {Value("UMask")} && exec {Value("ExecStart")}"];
    }
}
