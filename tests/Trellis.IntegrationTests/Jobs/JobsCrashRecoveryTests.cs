using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Jobs;

/// <summary>A rollout survives <c>kill -9</c> of a real <c>trellis serve</c>: nothing lost or duplicated, its rate and time-outs carry on.</summary>
public sealed class JobsCrashRecoveryTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly string _data = Path.Combine(Path.GetTempPath(), $"trellis-jobs-{Guid.NewGuid():N}");

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_rollout_resumes_at_its_rate_with_its_time_outs_after_kill_9()
    {
        const string Group = "fleet";
        const string Job = "rollout";
        Dictionary<string, (string Status, long Version)> before;
        using (var first = await ServerProcess.StartAsync(_data, Ct))
        {
            var setup = new List<(string, object)> { ("create_thing_group", new { thingGroupName = Group }) };
            for (var i = 0; i < 30; i++)
            {
                setup.Add(("create_thing", new { thingName = $"dev-{i:00}" }));
                setup.Add(("add_thing_to_thing_group", new { thingGroupName = Group, thingName = $"dev-{i:00}" }));
            }

            setup.Add(("create_job", new
            {
                jobId = Job,
                targets = new[] { "arn:aws:iot:us-east-1:000000000000:thinggroup/" + Group },
                document = """{"operation":"install"}""",
                jobExecutionsRolloutConfig = new { maximumPerMinute = 10 },
                timeoutConfig = new { inProgressTimeoutInMinutes = 1 },
            }));
            Assert.All(await first.IotCallsAsync([.. setup], Ct), r => Assert.True(r!["status"]!.GetValue<int>() == 200, r.ToJsonString()));

            // The first minute's ten are released; three devices start, two of them finish.
            Assert.True(await Eventually.TrueAsync(async () => (await ExecutionsAsync(first)).Count == 10, Timeout, Ct), "the first ten were not released");
            var released = (await ExecutionsAsync(first)).Keys.Order(StringComparer.Ordinal).ToList();
            var calls = await first.IotCallsAsync([
                ("jobs-data:start_next_pending_job_execution", new { thingName = released[0] }),
                ("jobs-data:start_next_pending_job_execution", new { thingName = released[1] }),
                ("jobs-data:start_next_pending_job_execution", new { thingName = released[2] }),
                ("jobs-data:update_job_execution", new { thingName = released[0], jobId = Job, status = "SUCCEEDED" }),
                ("jobs-data:update_job_execution", new { thingName = released[1], jobId = Job, status = "FAILED" }),
            ], Ct);
            Assert.All(calls, r => Assert.True(r!["status"]!.GetValue<int>() == 200, r.ToJsonString()));
            before = await ExecutionsAsync(first);
            first.Kill9();
        }

        using var second = await ServerProcess.StartAsync(_data, Ct);

        // Every execution is back as it was: none lost, none duplicated, versions kept.
        var after = await ExecutionsAsync(second);
        Assert.Equal(before.OrderBy(e => e.Key, StringComparer.Ordinal), after.OrderBy(e => e.Key, StringComparer.Ordinal));
        Assert.Equal("FAILED=1 IN_PROGRESS=1 QUEUED=7 SUCCEEDED=1", string.Join(' ', after.Values.GroupBy(v => v.Status).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key}={g.Count()}")));

        // A minute after the first release the next ten go out, not more; the started one times out a minute after it started.
        Assert.True(await Eventually.TrueAsync(async () =>
        {
            var now = await ExecutionsAsync(second);
            return now.Count == 20 && now.Values.Count(v => v.Status == "TIMED_OUT") == 1;
        }, TimeSpan.FromSeconds(100), Ct), "the rollout or the time-out did not resume: " + string.Join(", ", (await ExecutionsAsync(second)).Select(e => $"{e.Key}={e.Value.Status}")));
        var described = await second.IotCallsAsync([("describe_job", new { jobId = Job })], Ct);
        var details = described[0]!["body"]!["job"]!["jobProcessDetails"]!;
        Assert.Equal((1, 1, 1, 17), (details["numberOfSucceededThings"]!.GetValue<int>(), details["numberOfFailedThings"]!.GetValue<int>(), details["numberOfTimedOutThings"]!.GetValue<int>(), details["numberOfQueuedThings"]!.GetValue<int>()));
    }

    /// <summary>Each thing's execution of the job: status and version.</summary>
    private static async Task<Dictionary<string, (string Status, long Version)>> ExecutionsAsync(ServerProcess server)
    {
        var list = await server.IotCallsAsync([("list_job_executions_for_job", new { jobId = "rollout", maxResults = 250 })], Ct);
        var things = list[0]!["body"]!["executionSummaries"]!.AsArray().Select(e => e!["thingArn"]!.GetValue<string>().Split('/')[^1]).ToList();
        var described = await server.IotCallsAsync([.. things.Select(t => ("describe_job_execution", (object)new { jobId = "rollout", thingName = t }))], Ct);
        var executions = new Dictionary<string, (string, long)>(StringComparer.Ordinal);
        for (var i = 0; i < things.Count; i++)
        {
            var execution = described[i]!["body"]!["execution"]!;
            executions[things[i]] = (execution["status"]!.GetValue<string>(), execution["versionNumber"]!.GetValue<long>());
        }

        return executions;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_data, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
