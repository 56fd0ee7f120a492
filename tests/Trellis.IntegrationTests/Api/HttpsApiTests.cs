using System.Text.Json;
using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary>
/// The API over HTTPS only (<c>--https … --http off</c>): boto3, the AWS CLI and <c>trellis</c>
/// verify the server against the data folder's ca.pem and refuse it without; DescribeEndpoint names
/// the HTTPS API for iot:Jobs and the MQTT TLS host for iot:Data-ATS.
/// </summary>
public sealed class HttpsApiTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task The_api_serves_https_only_and_clients_verify_it_against_the_data_folders_ca()
    {
        var ct = TestContext.Current.CancellationToken;
        var data = Path.Combine(Path.GetTempPath(), "trellis-httpsapi-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            using var server = await ServerProcess.StartAsync(data, ct, null, "--https", "127.0.0.1:0", "--mqtts", "127.0.0.1:0", "--http", "off");
            Assert.True(server.HttpsPort > 0, server.Banner);
            Assert.Equal(0, server.HttpPort);
            Assert.Contains("--ca-bundle", server.Banner, StringComparison.Ordinal); // the "Try it" lines work as printed
            var ca = Path.Combine(data, "ca.pem");
            var endpoint = server.HttpsEndpoint;

            // boto3 with AWS_CA_BUNDLE: the control plane and DescribeEndpoint.
            var env = server.AwsEnvironment(null);
            env["AWS_CA_BUNDLE"] = ca;
            var calls = JsonSerializer.Serialize(new object[]
            {
                new { call = "create_thing", args = new { thingName = "over-tls" } },
                new { call = "describe_endpoint", args = new { endpointType = "iot:Jobs" } },
                new { call = "describe_endpoint", args = new { endpointType = "iot:Data-ATS" } },
                new { call = "jobs-data:get_pending_job_executions", args = new { thingName = "over-tls" } },
            });
            var script = Path.Combine(AppContext.BaseDirectory, "Scripts", "iot_calls.py");
            var answers = JsonNode.Parse((await ExternalTool.RunCheckedAsync("python3", [script, endpoint, calls], Timeout, env, ct)).Stdout)!.AsArray();
            Assert.All(answers, a => Assert.Equal(200, a!["status"]!.GetValue<int>()));
            Assert.Equal($"localhost:{server.HttpsPort}", answers[1]!["body"]!["endpointAddress"]!.GetValue<string>());
            Assert.StartsWith("localhost", answers[2]!["body"]!["endpointAddress"]!.GetValue<string>(), StringComparison.Ordinal);

            // Without the CA, boto3 refuses the server's certificate.
            env["AWS_CA_BUNDLE"] = "/etc/ssl/certs/ca-certificates.crt"; // the system's roots (an empty value turns botocore's verification off)
            var unverified = await ExternalTool.RunAsync("python3", [script, endpoint, calls], Timeout, env, ct);
            Assert.NotEqual(0, unverified.ExitCode);
            Assert.Contains("CERTIFICATE_VERIFY_FAILED", unverified.Output, StringComparison.Ordinal);

            // The AWS CLI with --ca-bundle.
            var aws = await ExternalTool.RunAsync("aws", ["iot", "describe-thing", "--thing-name", "over-tls", "--endpoint-url", endpoint, "--ca-bundle", ca, "--output", "json"], Timeout, env, ct);
            Assert.True(aws.ExitCode == 0, aws.Output);
            Assert.Equal("over-tls", JsonNode.Parse(aws.Stdout)!["thingName"]!.GetValue<string>());

            // trellis trusts the data folder's ca.pem; given another folder's credentials only, it says why it stops.
            var listed = await ExternalTool.RunAsync(TrellisCli.FileName, [.. TrellisCli.Leading, "things", "list", "--endpoint", endpoint, "--data", data, "--output", "json"], Timeout, env, ct);
            Assert.True(listed.ExitCode == 0, listed.Output);
            Assert.Contains("over-tls", listed.Stdout, StringComparison.Ordinal);
            var elsewhere = Directory.CreateDirectory(Path.Combine(data, "elsewhere")).FullName;
            File.Copy(Path.Combine(data, "credentials"), Path.Combine(elsewhere, "credentials"));
            var untrusted = await ExternalTool.RunAsync(TrellisCli.FileName, [.. TrellisCli.Leading, "things", "list", "--endpoint", endpoint, "--data", elsewhere], Timeout, env, ct);
            Assert.Equal(3, untrusted.ExitCode);
            Assert.Contains("TLS certificate is not trusted", untrusted.Stderr, StringComparison.Ordinal);

            // The web console over HTTPS: signed in, its MQTT client connects over wss as that user.
            var credentials = (await File.ReadAllLinesAsync(Path.Combine(data, "credentials"), ct)).Select(l => l.Split('=', 2, StringSplitOptions.TrimEntries)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1]);
            var (playwright, launched) = await Chromium.LaunchAsync();
            using var _ = playwright;
            await using var browser = launched;
            var context = await browser.NewContextAsync(new() { IgnoreHTTPSErrors = true }); // the page's trust is not under test here; the socket's sign-in is
            context.SetDefaultTimeout(20_000);
            var page = await context.NewPageAsync();
            await Chromium.SignInAsync(page, endpoint, credentials["aws_access_key_id"], credentials["aws_secret_access_key"]);
            await page.GotoAsync(endpoint + "/#/mqtt");
            var state = page.Locator("[data-field=mqtt-state]");
            await state.Filter(new() { HasTextRegex = new System.Text.RegularExpressions.Regex("^(Connected|Not connected)") }).WaitForAsync();
            Assert.True(await state.InnerTextAsync() == "Connected.", await state.InnerTextAsync() + "\n" + server.Output);
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }
}
