using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Jobs;

/// <summary>AWS IoT Jobs through boto3's "iot" and "iot-jobs-data" clients: shapes, the execution state machine, errors.</summary>
[Collection(TrellisServerGroup.Name)]
public sealed class JobsApiTests(TrellisHost host)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_job_on_a_nested_group_runs_through_the_execution_state_machine_with_aws_errors()
    {
        var (site, floor, a, b, job) = (TrellisHost.Unique("site"), TrellisHost.Unique("floor"), TrellisHost.Unique("a"), TrellisHost.Unique("b"), TrellisHost.Unique("job"));
        var setup = await CallAsync(
            ("create_thing_group", new { thingGroupName = site }),
            ("create_thing_group", new { thingGroupName = floor, parentGroupName = site }),
            ("create_thing", new { thingName = a }),
            ("create_thing", new { thingName = b }),
            ("add_thing_to_thing_group", new { thingGroupName = floor, thingName = a }),
            ("add_thing_to_thing_group", new { thingGroupName = site, thingName = b }));
        Assert.All(setup, r => Assert.Equal(200, Status(r)));
        var siteArn = Arn("thinggroup/" + site);

        var r = await CallAsync(
            ("create_job", new { jobId = job, targets = new[] { siteArn }, document = """{"operation":"install","version":"${aws:iot:parameter:version}"}""", documentParameters = new { version = "2.1.0" }, description = "firmware 2.1.0", timeoutConfig = new { inProgressTimeoutInMinutes = 30 } }),
            ("create_job", new { jobId = job, targets = new[] { siteArn }, document = "{}" }),
            ("create_job", new { jobId = TrellisHost.Unique("j"), targets = new[] { Arn("thing/no-such-thing") }, document = "{}" }),
            ("create_job", new { jobId = TrellisHost.Unique("j"), targets = new[] { siteArn }, document = "{\"a\":\"" + new string('x', 33_000) + "\"}" }),
            ("create_job", new { jobId = TrellisHost.Unique("j"), targets = new[] { siteArn }, document = "{not json" }),
            ("create_job", new { jobId = TrellisHost.Unique("j"), targets = new[] { siteArn }, document = """{"v":"${aws:iot:parameter:missing}"}""" }));
        Assert.Equal(200, Status(r[0]));
        Assert.Equal(Arn("job/" + job), Body(r[0])["jobArn"]!.GetValue<string>());
        Assert.Equal((409, "ResourceAlreadyExistsException"), Error(r[1]));
        Assert.Equal((404, "ResourceNotFoundException"), Error(r[2]));
        Assert.Equal((400, "InvalidRequestException"), Error(r[3]));
        Assert.Equal((400, "InvalidRequestException"), Error(r[4]));
        Assert.Equal((400, "InvalidRequestException"), Error(r[5]));

        // The rollout releases both things (one through the child group) within a moment.
        Assert.True(await Eventually.TrueAsync(async () =>
        {
            var d = await CallAsync(("describe_job", new { jobId = job }));
            return Body(d[0])["job"]!["jobProcessDetails"]!["numberOfQueuedThings"]!.GetValue<int>() == 2;
        }, TimeSpan.FromSeconds(10), Ct), "the rollout did not queue both things");

        r = await CallAsync(
            ("jobs-data:get_pending_job_executions", new { thingName = a }),
            ("jobs-data:start_next_pending_job_execution", new { thingName = a, statusDetails = new { step = "download" }, stepTimeoutInMinutes = 10 }),
            ("jobs-data:update_job_execution", new { thingName = a, jobId = job, status = "IN_PROGRESS", expectedVersion = 1 }),
            ("jobs-data:update_job_execution", new { thingName = a, jobId = job, status = "QUEUED" }),
            ("jobs-data:update_job_execution", new { thingName = a, jobId = job, status = "SUCCEEDED", expectedVersion = 2, statusDetails = new { step = "done" }, includeJobExecutionState = true, includeJobDocument = true }),
            ("jobs-data:update_job_execution", new { thingName = a, jobId = job, status = "IN_PROGRESS" }),
            ("jobs-data:describe_job_execution", new { thingName = a, jobId = job }),
            ("jobs-data:describe_job_execution", new { thingName = a, jobId = "no-such-job" }),
            ("describe_job_execution", new { jobId = job, thingName = a }),
            ("get_job_document", new { jobId = job }),
            ("get_job_document", new { jobId = job, beforeSubstitution = true }),
            ("list_job_executions_for_job", new { jobId = job }),
            ("list_job_executions_for_thing", new { thingName = a }),
            ("list_jobs", new { thingGroupName = site }));
        var queued = Body(r[0])["queuedJobs"]!.AsArray();
        Assert.Contains(queued, q => q!["jobId"]!.GetValue<string>() == job && q["versionNumber"]!.GetValue<long>() == 1);
        var started = Body(r[1])["execution"]!;
        Assert.Equal(("IN_PROGRESS", 2L, "download"), (started["status"]!.GetValue<string>(), started["versionNumber"]!.GetValue<long>(), started["statusDetails"]!["step"]!.GetValue<string>()));
        Assert.Equal("""{"operation":"install","version":"2.1.0"}""", started["jobDocument"]!.GetValue<string>());
        Assert.InRange(started["approximateSecondsBeforeTimedOut"]!.GetValue<long>(), 550, 600); // the step time-out, sooner than the job's 30 minutes
        Assert.Equal((409, "ConflictException"), Error(r[2])); // stale expectedVersion
        Assert.Equal((400, "InvalidRequestException"), Error(r[3])); // a device cannot set QUEUED
        Assert.Equal(("SUCCEEDED", 3L), (Body(r[4])["executionState"]!["status"]!.GetValue<string>(), Body(r[4])["executionState"]!["versionNumber"]!.GetValue<long>()));
        Assert.Contains("2.1.0", Body(r[4])["jobDocument"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal((409, "InvalidStateTransitionException"), Error(r[5])); // terminal stays terminal
        Assert.Equal("SUCCEEDED", Body(r[6])["execution"]!["status"]!.GetValue<string>());
        Assert.Equal((404, "ResourceNotFoundException"), Error(r[7]));
        var described = Body(r[8])["execution"]!;
        Assert.Equal(("SUCCEEDED", "done", Arn("thing/" + a)), (described["status"]!.GetValue<string>(), described["statusDetails"]!["detailsMap"]!["step"]!.GetValue<string>(), described["thingArn"]!.GetValue<string>()));
        Assert.Equal("""{"operation":"install","version":"2.1.0"}""", Body(r[9])["document"]!.GetValue<string>());
        Assert.Contains("${aws:iot:parameter:version}", Body(r[10])["document"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(2, Body(r[11])["executionSummaries"]!.AsArray().Count);
        Assert.Equal(job, Body(r[12])["executionSummaries"]![0]!["jobId"]!.GetValue<string>());
        Assert.Equal(job, Body(r[13])["jobs"]![0]!["jobId"]!.GetValue<string>());

        // Settings change while the job runs.
        r = await CallAsync(
            ("update_job", new { jobId = job, description = "firmware 2.1.0 (slower)", jobExecutionsRolloutConfig = new { maximumPerMinute = 5 }, timeoutConfig = new { inProgressTimeoutInMinutes = 60 } }),
            ("update_job", new { jobId = "no-such-job", description = "x" }),
            ("describe_job", new { jobId = job }));
        Assert.Equal(200, Status(r[0]));
        Assert.Equal((404, "ResourceNotFoundException"), Error(r[1]));
        var updatedJob = Body(r[2])["job"]!;
        Assert.Equal(("firmware 2.1.0 (slower)", 5, 60), (updatedJob["description"]!.GetValue<string>(), updatedJob["jobExecutionsRolloutConfig"]!["maximumPerMinute"]!.GetValue<int>(), updatedJob["timeoutConfig"]!["inProgressTimeoutInMinutes"]!.GetValue<int>()));

        // Still running: deleting needs force; canceling cancels what is queued (b) and keeps a's result.
        r = await CallAsync(
            ("delete_job", new { jobId = job }),
            ("cancel_job", new { jobId = job, reasonCode = "BAD_BUILD", comment = "stop the rollout" }),
            ("describe_job", new { jobId = job }),
            ("describe_job_execution", new { jobId = job, thingName = b }),
            ("jobs-data:start_next_pending_job_execution", new { thingName = b }),
            ("delete_job", new { jobId = job, force = true }),
            ("describe_job", new { jobId = job }));
        Assert.Equal((409, "InvalidStateTransitionException"), Error(r[0]));
        Assert.Equal(200, Status(r[1]));
        var canceled = Body(r[2])["job"]!;
        Assert.Equal(("CANCELED", "BAD_BUILD", "stop the rollout"), (canceled["status"]!.GetValue<string>(), canceled["reasonCode"]!.GetValue<string>(), canceled["comment"]!.GetValue<string>()));
        Assert.Equal((1, 1), (canceled["jobProcessDetails"]!["numberOfSucceededThings"]!.GetValue<int>(), canceled["jobProcessDetails"]!["numberOfCanceledThings"]!.GetValue<int>()));
        Assert.Equal("CANCELED", Body(r[3])["execution"]!["status"]!.GetValue<string>());
        Assert.Null(Body(r[4])["execution"]); // nothing pending for b any more
        Assert.Equal(200, Status(r[5]));
        Assert.Equal((404, "ResourceNotFoundException"), Error(r[6]));
    }

    [Fact]
    public async Task A_document_source_names_a_stored_file_and_an_unknown_one_is_refused()
    {
        var (thing, job, doc) = (TrellisHost.Unique("ds"), TrellisHost.Unique("job"), TrellisHost.Unique("doc") + ".json");
        var path = Path.Combine(host.DataDirectory, doc);
        await File.WriteAllTextAsync(path, """{"operation":"reboot","delaySeconds":5}""", Ct);
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["firmware", "upload", doc, path], Ct)).ExitCode);
        var r = await CallAsync(
            ("create_thing", new { thingName = thing }),
            ("create_job", new { jobId = job, targets = new[] { Arn("thing/" + thing) }, documentSource = $"https://s3.amazonaws.com/ops-documents/{doc}" }),
            ("create_job", new { jobId = TrellisHost.Unique("job"), targets = new[] { Arn("thing/" + thing) }, documentSource = "https://s3.amazonaws.com/ops-documents/missing.json" }),
            ("get_job_document", new { jobId = job }));
        Assert.Equal([200, 200, 404, 200], r.Select(Status));
        Assert.Equal(5, JsonNode.Parse(r[3]!["body"]!["document"]!.GetValue<string>())!["delaySeconds"]!.GetValue<int>());
    }

    [Fact]
    public async Task Maintenance_windows_hold_a_jobs_rollout_outside_them_and_are_described_back()
    {
        // A window that opened half an hour ago and lasts an hour: things are reached now. One that
        // opens in twelve hours: nothing is reached yet. A cron Trellis cannot run is refused by name.
        var (thing, open, closed) = (TrellisHost.Unique("mw"), TrellisHost.Unique("job"), TrellisHost.Unique("job"));
        var now = DateTimeOffset.UtcNow;
        string Cron(DateTimeOffset at) => $"cron({at.Minute} {at.Hour} * * ? *)";
        var r = await CallAsync(
            ("create_thing", new { thingName = thing }),
            ("create_job", new { jobId = open, targets = new[] { Arn("thing/" + thing) }, document = "{}", schedulingConfig = new { maintenanceWindows = new[] { new { startTime = Cron(now.AddMinutes(-30)), durationInMinutes = 60 } } } }),
            ("create_job", new { jobId = closed, targets = new[] { Arn("thing/" + thing) }, document = "{}", schedulingConfig = new { maintenanceWindows = new[] { new { startTime = Cron(now.AddHours(12)), durationInMinutes = 30 } } } }),
            ("create_job", new { jobId = TrellisHost.Unique("job"), targets = new[] { Arn("thing/" + thing) }, document = "{}", schedulingConfig = new { maintenanceWindows = new[] { new { startTime = "cron(0 2 L * ? *)", durationInMinutes = 60 } } } }),
            ("describe_job", new { jobId = closed }),
            ("list_job_executions_for_thing", new { thingName = thing }));
        Assert.Equal([200, 200, 200, 400], r.Take(4).Select(Status));
        Assert.Contains("L, W or #", r[3]!["body"]?["message"]?.GetValue<string>() ?? r[3]!.ToJsonString(), StringComparison.Ordinal);
        Assert.Equal(Cron(now.AddHours(12)), r[4]!["body"]!["job"]!["schedulingConfig"]!["maintenanceWindows"]![0]!["startTime"]!.GetValue<string>());
        Assert.Equal([open], r[5]!["body"]!["executionSummaries"]!.AsArray().Select(e => e!["jobId"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Templates_retries_cancel_and_delete_of_executions_follow_aws()
    {
        var (thing, template, job) = (TrellisHost.Unique("t"), TrellisHost.Unique("tpl"), TrellisHost.Unique("job"));
        var r = await CallAsync(
            ("create_thing", new { thingName = thing }),
            ("create_job_template", new { jobTemplateId = template, description = "reboot", document = """{"operation":"reboot"}""", jobExecutionsRetryConfig = new { criteriaList = new[] { new { failureType = "FAILED", numberOfRetries = 1 } } } }),
            ("create_job_template", new { jobTemplateId = template, description = "again", document = "{}" }),
            ("describe_job_template", new { jobTemplateId = template }),
            ("list_job_templates", new { }),
            ("create_job", new { jobId = job, targets = new[] { Arn("thing/" + thing) }, jobTemplateArn = Arn("jobtemplate/" + template) }),
            ("create_job", new { jobId = TrellisHost.Unique("j"), targets = new[] { Arn("thing/" + thing) }, jobTemplateArn = Arn("jobtemplate/no-such-template") }));
        Assert.All(r[..2], x => Assert.Equal(200, Status(x)));
        Assert.Equal((409, "ConflictException"), Error(r[2]));
        Assert.Equal(("reboot", 1), (Body(r[3])["description"]!.GetValue<string>(), Body(r[3])["jobExecutionsRetryConfig"]!["criteriaList"]![0]!["numberOfRetries"]!.GetValue<int>()));
        Assert.Contains(Body(r[4])["jobTemplates"]!.AsArray(), t => t!["jobTemplateId"]!.GetValue<string>() == template);
        Assert.Equal(200, Status(r[5]));
        Assert.Equal((404, "ResourceNotFoundException"), Error(r[6]));

        Assert.True(await Eventually.TrueAsync(async () => Body((await CallAsync(("jobs-data:get_pending_job_executions", new { thingName = thing })))[0])["queuedJobs"]!.AsArray().Count == 1, TimeSpan.FromSeconds(10), Ct), "the job was not queued");
        r = await CallAsync(
            ("jobs-data:update_job_execution", new { thingName = thing, jobId = job, status = "FAILED", statusDetails = new { reason = "flash error" } }),
            ("describe_job_execution", new { jobId = job, thingName = thing }),
            ("describe_job_execution", new { jobId = job, thingName = thing, executionNumber = 1 }),
            ("cancel_job_execution", new { jobId = job, thingName = thing, expectedVersion = 99 }),
            ("cancel_job_execution", new { jobId = job, thingName = thing }),
            ("cancel_job_execution", new { jobId = job, thingName = thing }),
            ("delete_job_execution", new { jobId = job, thingName = thing, executionNumber = 2 }),
            ("describe_job_execution", new { jobId = job, thingName = thing }),
            ("describe_job", new { jobId = job }),
            ("delete_job_template", new { jobTemplateId = template }),
            ("describe_job_template", new { jobTemplateId = template }));
        Assert.Equal(200, Status(r[0]));
        var retry = Body(r[1])["execution"]!;
        Assert.Equal(("QUEUED", 2L), (retry["status"]!.GetValue<string>(), retry["executionNumber"]!.GetValue<long>())); // the retry is a new execution
        Assert.Equal(("FAILED", "flash error"), (Body(r[2])["execution"]!["status"]!.GetValue<string>(), Body(r[2])["execution"]!["statusDetails"]!["detailsMap"]!["reason"]!.GetValue<string>()));
        Assert.Equal((409, "VersionConflictException"), Error(r[3]));
        Assert.Equal(200, Status(r[4]));
        Assert.Equal((409, "InvalidStateTransitionException"), Error(r[5]));
        Assert.Equal(200, Status(r[6]));
        Assert.Equal(1L, Body(r[7])["execution"]!["executionNumber"]!.GetValue<long>()); // the first attempt is current again
        Assert.Equal(Arn("jobtemplate/" + template), Body(r[8])["job"]!["jobTemplateArn"]!.GetValue<string>());
        Assert.Equal(200, Status(r[9]));
        Assert.Equal((404, "ResourceNotFoundException"), Error(r[10]));
    }

    [Fact]
    public async Task A_continuous_job_reaches_things_that_join_its_group_later_and_removes_those_that_leave()
    {
        var (site, floor, early, late, job) = (TrellisHost.Unique("site"), TrellisHost.Unique("floor"), TrellisHost.Unique("early"), TrellisHost.Unique("late"), TrellisHost.Unique("job"));
        var r = await CallAsync(
            ("create_thing_group", new { thingGroupName = site }),
            ("create_thing_group", new { thingGroupName = floor, parentGroupName = site }),
            ("create_thing", new { thingName = early }),
            ("create_thing", new { thingName = late }),
            ("add_thing_to_thing_group", new { thingGroupName = site, thingName = early }),
            ("create_job", new { jobId = job, targets = new[] { Arn("thinggroup/" + site) }, document = """{"operation":"configure"}""", targetSelection = "CONTINUOUS" }),
            ("add_thing_to_thing_group", new { thingGroupName = floor, thingName = late }));
        Assert.All(r, x => Assert.Equal(200, Status(x)));

        // The thing that joined a child group after the job was created gets it too.
        Assert.True(await Eventually.TrueAsync(async () => await StatusOfAsync(job, late) == "QUEUED", TimeSpan.FromSeconds(10), Ct), "the late thing was not reached");
        Assert.Equal("QUEUED", await StatusOfAsync(job, early));

        // Leaving the group removes a queued execution; a CONTINUOUS job stays IN_PROGRESS with nothing pending.
        r = await CallAsync(
            ("remove_thing_from_thing_group", new { thingGroupName = floor, thingName = late }),
            ("jobs-data:update_job_execution", new { thingName = early, jobId = job, status = "SUCCEEDED" }));
        Assert.All(r, x => Assert.Equal(200, Status(x)));
        Assert.True(await Eventually.TrueAsync(async () => await StatusOfAsync(job, late) == "REMOVED", TimeSpan.FromSeconds(10), Ct), "the thing that left was not removed");
        var described = Body((await CallAsync(("describe_job", new { jobId = job })))[0])["job"]!;
        Assert.Equal(("IN_PROGRESS", 1, 1), (described["status"]!.GetValue<string>(), described["jobProcessDetails"]!["numberOfSucceededThings"]!.GetValue<int>(), described["jobProcessDetails"]!["numberOfRemovedThings"]!.GetValue<int>()));
        Assert.Equal(200, Status((await CallAsync(("cancel_job", new { jobId = job })))[0]));
    }

    [Fact]
    public async Task A_scheduled_job_waits_for_its_start_time()
    {
        var (thing, job) = (TrellisHost.Unique("t"), TrellisHost.Unique("job"));
        var start = DateTimeOffset.UtcNow.AddDays(1).ToString("yyyy-MM-dd'T'HH:mm", System.Globalization.CultureInfo.InvariantCulture);
        var r = await CallAsync(
            ("create_thing", new { thingName = thing }),
            ("create_job", new { jobId = job, targets = new[] { Arn("thing/" + thing) }, document = "{}", schedulingConfig = new { startTime = start, endBehavior = "CANCEL" } }),
            ("create_job", new { jobId = TrellisHost.Unique("j"), targets = new[] { Arn("thing/" + thing) }, document = "{}", schedulingConfig = new { startTime = "tomorrow" } }),
            ("describe_job", new { jobId = job }),
            ("jobs-data:get_pending_job_executions", new { thingName = thing }));
        Assert.Equal(200, Status(r[1]));
        Assert.Equal((400, "InvalidRequestException"), Error(r[2]));
        Assert.Equal(("SCHEDULED", start), (Body(r[3])["job"]!["status"]!.GetValue<string>(), Body(r[3])["job"]!["schedulingConfig"]!["startTime"]!.GetValue<string>()));
        Assert.Empty(Body(r[4])["queuedJobs"]!.AsArray());
        Assert.Equal(200, Status((await CallAsync(("cancel_job", new { jobId = job })))[0]));
    }

    [Fact]
    public async Task The_aws_cli_creates_and_follows_a_job_and_answers_as_the_device()
    {
        var (thing, job) = (TrellisHost.Unique("t"), TrellisHost.Unique("job"));
        Assert.Equal(200, Status((await CallAsync(("create_thing", new { thingName = thing })))[0]));
        var created = await AwsAsync("iot", "create-job", "--job-id", job, "--targets", Arn("thing/" + thing), "--document", """{"operation":"reboot"}""",
            "--job-executions-rollout-config", "maximumPerMinute=50", "--abort-config", "criteriaList=[{failureType=FAILED,action=CANCEL,thresholdPercentage=50,minNumberOfExecutedThings=1}]");
        Assert.Equal(job, created["jobId"]!.GetValue<string>());
        Assert.True(await Eventually.TrueAsync(async () => await StatusOfAsync(job, thing) == "QUEUED", TimeSpan.FromSeconds(10), Ct), "the job was not queued");
        var pending = await AwsAsync("iot-jobs-data", "get-pending-job-executions", "--thing-name", thing);
        Assert.Equal(job, pending["queuedJobs"]![0]!["jobId"]!.GetValue<string>());
        var updated = await AwsAsync("iot-jobs-data", "update-job-execution", "--thing-name", thing, "--job-id", job, "--status", "FAILED", "--include-job-execution-state");
        Assert.Equal("FAILED", updated["executionState"]!["status"]!.GetValue<string>());

        // One failure of one executed thing is 100 %: the abort rule cancels the job.
        var described = await AwsAsync("iot", "describe-job", "--job-id", job);
        Assert.Equal(("CANCELED", 50), (described["job"]!["status"]!.GetValue<string>(), described["job"]!["jobExecutionsRolloutConfig"]!["maximumPerMinute"]!.GetValue<int>()));
        var executions = await AwsAsync("iot", "list-job-executions-for-thing", "--thing-name", thing);
        Assert.Equal("FAILED", executions["executionSummaries"]![0]!["jobExecutionSummary"]!["status"]!.GetValue<string>());
    }

    /// <summary>One AWS CLI command against the server, its JSON output.</summary>
    private async Task<JsonNode> AwsAsync(params string[] args)
    {
        var result = await ExternalTool.RunAsync("aws", [.. args, "--endpoint-url", host.Endpoint, "--output", "json"], TimeSpan.FromSeconds(60), host.AwsEnvironment, Ct);
        Assert.True(result.ExitCode == 0, $"aws {string.Join(' ', args)}: {result.Output}");
        return JsonNode.Parse(result.Stdout)!;
    }

    private async Task<string?> StatusOfAsync(string job, string thing)
    {
        var r = await CallAsync(("describe_job_execution", new { jobId = job, thingName = thing }));
        return r[0]!["body"]?["execution"]?["status"]?.GetValue<string>();
    }

    private static string Arn(string resource) => $"arn:aws:iot:us-east-1:000000000000:{resource}";

    private static int Status(JsonNode? result) => result!["status"]!.GetValue<int>();

    private static JsonNode Body(JsonNode? result) => result!["body"] ?? throw new InvalidOperationException("no body: " + result.ToJsonString());

    private static (int, string?) Error(JsonNode? result) => (Status(result), result!["error"]?.GetValue<string>());

    private Task<JsonNode?[]> CallAsync(params (string Call, object Args)[] calls) => host.IotCallsAsync(calls, Ct);
}
