using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Jobs;

/// <summary><c>trellis jobs</c>: create on things and groups, the rollout view, executions, cancel, delete and exit codes.</summary>
[Collection(TrellisServerGroup.Name)]
public sealed class JobsCliTests(TrellisHost host)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Trellis_jobs_creates_follows_and_cancels_a_rollout()
    {
        var (thing, other, group, job) = (TrellisHost.Unique("t"), TrellisHost.Unique("t"), TrellisHost.Unique("g"), TrellisHost.Unique("job"));
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["things", "create", thing], Ct)).ExitCode);
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["things", "create", other], Ct)).ExitCode);
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["groups", "create", group], Ct)).ExitCode);
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["groups", "add-thing", group, thing], Ct)).ExitCode);

        var created = await TrellisCli.RunAsync(host, ["jobs", "create", job, "--group", group, "--thing", other, "--document", """{"operation":"reboot"}""",
            "--max-per-minute", "100", "--abort-percent", "50", "--abort-min", "2", "--timeout-minutes", "30", "--description", "reboot the lobby"], Ct);
        Assert.True(created.ExitCode == 0, created.Output);
        Assert.Contains("created", created.Stdout, StringComparison.Ordinal);

        var described = JsonNode.Parse((await TrellisCli.RunAsync(host, ["jobs", "describe", job, "--output", "json"], Ct)).Stdout)!["job"]!;
        Assert.Equal(("SNAPSHOT", 2, 100, 30), (described["targetSelection"]!.GetValue<string>(), described["jobProcessDetails"]!["numberOfQueuedThings"]!.GetValue<int>(),
            described["jobExecutionsRolloutConfig"]!["maximumPerMinute"]!.GetValue<int>(), described["timeoutConfig"]!["inProgressTimeoutInMinutes"]!.GetValue<int>()));
        var view = await TrellisCli.RunAsync(host, ["jobs", "describe", job], Ct);
        Assert.Contains("queued", view.Stdout, StringComparison.Ordinal);
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["jobs", "executions", job], Ct)).ExitCode); // the table
        var executions = JsonNode.Parse((await TrellisCli.RunAsync(host, ["jobs", "executions", job, "--output", "json"], Ct)).Stdout)!["executionSummaries"]!.AsArray();
        Assert.Equal(new[] { other, thing }.Order(StringComparer.Ordinal), executions.Select(e => e!["thingArn"]!.GetValue<string>().Split('/')[^1]).Order(StringComparer.Ordinal));
        var ofThing = JsonNode.Parse((await TrellisCli.RunAsync(host, ["jobs", "thing", thing, "--output", "json"], Ct)).Stdout)!["executionSummaries"]!.AsArray();
        Assert.Equal(job, ofThing[0]!["jobId"]!.GetValue<string>());
        var listed = JsonNode.Parse((await TrellisCli.RunAsync(host, ["jobs", "list", "--status", "IN_PROGRESS", "--output", "json"], Ct)).Stdout)!["jobs"]!.AsArray();
        Assert.Contains(listed, j => j!["jobId"]!.GetValue<string>() == job);

        // Refusals: a running job is not deleted without --force; bad arguments are usage errors (2).
        var running = await TrellisCli.RunAsync(host, ["jobs", "delete", job], Ct);
        Assert.Equal(1, running.ExitCode);
        Assert.Contains("InvalidStateTransitionException", running.Stderr, StringComparison.Ordinal);
        Assert.Equal(2, (await TrellisCli.RunAsync(host, ["jobs", "create", TrellisHost.Unique("j"), "--document", "{}"], Ct)).ExitCode);
        var unknown = await TrellisCli.RunAsync(host, ["jobs", "create", TrellisHost.Unique("j"), "--thing", "no-such-thing", "--document", "{}"], Ct);
        Assert.Equal(1, unknown.ExitCode);

        // Cancel, then the live view ends at once (the job is no longer in progress) and shows why.
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["jobs", "cancel", job, "--reason-code", "OPERATOR", "--comment", "not today"], Ct)).ExitCode);
        var watched = await TrellisCli.RunAsync(host, ["jobs", "describe", job, "--watch"], Ct);
        Assert.True(watched.ExitCode == 0, watched.Output);
        Assert.Contains("CANCELED (OPERATOR)", watched.Stdout, StringComparison.Ordinal);
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["jobs", "delete", job], Ct)).ExitCode);
        Assert.Equal(1, (await TrellisCli.RunAsync(host, ["jobs", "describe", job], Ct)).ExitCode);
    }
}
