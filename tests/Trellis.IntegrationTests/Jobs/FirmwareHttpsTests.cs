using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Jobs;

/// <summary>With <c>--https</c>, download links use TLS with the server certificate, which chains to the data folder's CA (curl checks it).</summary>
public sealed partial class FirmwareHttpsTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Download_links_go_over_https_verified_against_the_data_folders_ca_with_ranges()
    {
        var ct = TestContext.Current.CancellationToken;
        var data = Path.Combine(Path.GetTempPath(), "trellis-https-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            using var server = await ServerProcess.StartAsync(data, ct, null, "--https", "127.0.0.1:0");
            var httpsPort = HttpsPattern().Match(server.Banner);
            Assert.True(httpsPort.Success, server.Banner);

            var image = RandomNumberGenerator.GetBytes(2_000_000);
            var path = Path.Combine(data, "fw.bin");
            await File.WriteAllBytesAsync(path, image, ct);
            string[] at = ["--endpoint", server.Endpoint, "--data", data];
            await ExternalTool.RunCheckedAsync(TrellisCli.FileName, [.. TrellisCli.Leading, "firmware", "upload", "fw.bin", path, .. at], Timeout, cancellationToken: ct);
            var url = (await ExternalTool.RunCheckedAsync(TrellisCli.FileName, [.. TrellisCli.Leading, "firmware", "url", "fw.bin", .. at], Timeout, cancellationToken: ct)).Stdout.Trim();
            Assert.StartsWith($"https://localhost:{httpsPort.Groups[1].Value}/firmware/fw.bin?", url, StringComparison.Ordinal);

            var part = Path.Combine(data, "part.bin");
            var ca = Path.Combine(data, "ca.pem");
            var ranged = await ExternalTool.RunCheckedAsync("curl", ["-s", "--cacert", ca, "-o", part, "-w", "%{http_code}", "-r", "500000-999999", url], Timeout, cancellationToken: ct);
            Assert.Equal("206", ranged.Stdout.Trim());
            Assert.Equal(image[500_000..1_000_000], await File.ReadAllBytesAsync(part, ct));
            var untrusted = await ExternalTool.RunAsync("curl", ["-s", "-o", part, url], Timeout, cancellationToken: ct);
            Assert.Equal(60, untrusted.ExitCode); // the system's roots do not know Trellis's CA
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    [GeneratedRegex(@"https://localhost:(\d+)")]
    private static partial Regex HttpsPattern();
}
