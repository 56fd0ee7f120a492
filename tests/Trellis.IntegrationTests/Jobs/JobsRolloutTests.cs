using System.Text.Json;
using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Jobs;

/// <summary>Rollouts at scale: a thousand devices (boto3 iot-jobs-data, eight at a time) in a CONTINUOUS job that aborts itself.</summary>
[Collection(TrellisServerGroup.Name)]
public sealed class JobsRolloutTests(TrellisHost host)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task An_exponential_rollout_to_a_thousand_devices_aborts_at_ten_percent_failures_and_every_device_ends_as_it_acted()
    {
        var prefix = TrellisHost.Unique("fleet");
        var config = new
        {
            group = prefix + "-group",
            prefix,
            count = 1000,
            failPercent = 15,
            job = new
            {
                jobId = prefix + "-job",
                document = """{"operation":"install","version":"3.0.0"}""",
                targetSelection = "CONTINUOUS",
                jobExecutionsRolloutConfig = new
                {
                    maximumPerMinute = 1000,
                    exponentialRate = new { baseRatePerMinute = 100, incrementFactor = 2.0, rateIncreaseCriteria = new { numberOfSucceededThings = 50 } },
                },
                abortConfig = new { criteriaList = new[] { new { failureType = "FAILED", action = "CANCEL", thresholdPercentage = 10.0, minNumberOfExecutedThings = 100 } } },
            },
        };
        var script = Path.Combine(AppContext.BaseDirectory, "Scripts", "jobs_fleet.py");
        var run = await ExternalTool.RunAsync("python3", [script, host.Endpoint, JsonSerializer.Serialize(config)], TimeSpan.FromMinutes(4), host.AwsEnvironment, Ct);
        Assert.True(run.ExitCode == 0, "jobs_fleet.py failed: " + run.Output);
        var result = JsonNode.Parse(run.Stdout)!;
        var job = result["job"]!;
        var acted = result["acted"]!.AsObject().ToDictionary(p => p.Key, p => p.Value!.GetValue<string>());
        var executions = result["executions"]!.AsObject().ToDictionary(p => p.Key, p => p.Value!.GetValue<string>());

        // The job canceled itself once 100 things had run and more than 10 % of them had failed.
        Assert.Equal(("CANCELED", "ABORTED"), (job["status"]!.GetValue<string>(), job["reasonCode"]!.GetValue<string>()));
        var details = job["jobProcessDetails"]!;
        int Count(string name) => details[name]!.GetValue<int>();
        var executed = Count("numberOfSucceededThings") + Count("numberOfFailedThings");
        Assert.InRange(executed, 100, 999);
        Assert.True(Count("numberOfFailedThings") * 100.0 / executed >= 10, details.ToJsonString());

        // The rollout never reached every thing: it released at its (exponential) rate, and stopped.
        Assert.InRange(executions.Count, executed, 999);

        // Every device's final state is what it did; whatever was still queued was canceled.
        Assert.All(acted, a => Assert.Equal(a.Value, executions[a.Key]));
        Assert.All(executions.Where(e => !acted.ContainsKey(e.Key)), e => Assert.Equal("CANCELED", e.Value));
        Assert.True(Count("numberOfCanceledThings") > 0, details.ToJsonString());
        Assert.Equal(executions.Count, executed + Count("numberOfCanceledThings"));
        var fails = result["fails"]!.AsArray().Select(f => f!.GetValue<string>()).ToHashSet(StringComparer.Ordinal);
        Assert.All(acted, a => Assert.Equal(fails.Contains(a.Key) ? "FAILED" : "SUCCEEDED", a.Value));
    }
}
