using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Jobs;

/// <summary>AWS's own jobs client (npm aws-iot-device-sdk-v2, in tests/device-sdks), unmodified, against Trellis over mutual TLS.</summary>
[Collection(TrellisServerGroup.Name)]
public sealed class JobsDeviceSdkTests(TrellisHost host)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task The_aws_iot_device_sdk_v2_jobs_client_is_notified_starts_and_completes_a_job()
    {
        var thing = TrellisHost.Unique("sdk");
        var job = TrellisHost.Unique("job");
        var device = await host.ProvisionAsync(thing, TrellisHost.Unique("jobs"), Policies.OwnJobs, Ct);
        var script = Path.Combine(RepositoryRoot(), "tests", "device-sdks", "jobs_agent.js");
        using var agent = ExternalTool.StartBackground("node", [script, "localhost", host.MqttsPort.ToString(System.Globalization.CultureInfo.InvariantCulture), host.CaPath, device.CertPath, device.KeyPath, thing]);
        Assert.True(await agent.WaitForLineAsync(l => l == "ready", TimeSpan.FromSeconds(30), Ct), "the agent did not connect: " + agent.Stderr);

        var created = await host.IotCallsAsync([("create_job", new { jobId = job, targets = new[] { $"arn:aws:iot:us-east-1:000000000000:thing/{thing}" }, document = """{"operation":"reboot"}""" })], Ct);
        Assert.Equal(200, created[0]!["status"]!.GetValue<int>());
        Assert.True(await agent.WaitForExitAsync(TimeSpan.FromSeconds(40), Ct), "the agent did not finish: " + agent.Stderr);
        Assert.True(agent.ExitCode == 0, "the agent failed: " + agent.Stderr + string.Join('\n', agent.Lines));

        var seen = JsonNode.Parse(agent.Lines[^1])!;
        Assert.Equal((job, "reboot"), (seen["next"]!["execution"]!["jobId"]!.GetValue<string>(), seen["next"]!["execution"]!["jobDocument"]!["operation"]!.GetValue<string>()));
        Assert.Equal(("start-1", "IN_PROGRESS"), (seen["started"]!["clientToken"]!.GetValue<string>(), seen["started"]!["execution"]!["status"]!.GetValue<string>()));
        Assert.Equal(("update-1", "SUCCEEDED"), (seen["updated"]!["clientToken"]!.GetValue<string>(), seen["updated"]!["executionState"]!["status"]!.GetValue<string>()));

        var described = await host.IotCallsAsync([("describe_job_execution", new { jobId = job, thingName = thing })], Ct);
        var execution = described[0]!["body"]!["execution"]!;
        Assert.Equal(("SUCCEEDED", "done"), (execution["status"]!.GetValue<string>(), execution["statusDetails"]!["detailsMap"]!["progress"]!.GetValue<string>()));
    }

    private static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Trellis.slnx")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("Trellis.slnx not found above " + AppContext.BaseDirectory);
    }
}
