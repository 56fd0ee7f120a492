using System.Collections.Concurrent;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Trellis.Jobs;
using Trellis.Storage;

namespace Trellis.UnitTests.Jobs;

/// <summary>
/// The jobs service on its real SQLite store and a fake clock: rollout rates, the exponential
/// ramp, time-outs and retries happen exactly when due. The registry is a small in-memory stand-in
/// (the integration tests run the real one).
/// </summary>
public sealed class JobServiceTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "trellis-jobs-" + Guid.NewGuid().ToString("N"));
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 4, 12, 0, 0, TimeSpan.Zero));
    private readonly Registry _registry = new();
    private readonly Published _published = new();
    private readonly JobService _jobs;

    public JobServiceTests()
    {
        Directory.CreateDirectory(_dir);
        var store = new SqliteJobStore(new SqliteDatabase(Path.Combine(_dir, "jobs.db"), SqliteJobStore.Migrations));
        _jobs = new JobService(store, _registry, _published, _time, NullLogger<JobService>.Instance);
    }

    [Fact]
    public void A_rollout_at_ten_a_minute_reaches_ten_things_in_any_minute()
    {
        _registry.Group("fleet", 25);
        Assert.True(_jobs.CreateJob(Job("rate", settings: new JobSettings { Rollout = new RolloutSettings(10, null, null, null, null) })).IsSuccess);
        Assert.Equal(10, Queued("rate"));

        _time.Advance(TimeSpan.FromSeconds(30));
        _jobs.RunDue();
        Assert.Equal(10, Queued("rate"));

        _time.Advance(TimeSpan.FromSeconds(30));
        _jobs.RunDue();
        Assert.Equal(20, Queued("rate"));

        _time.Advance(TimeSpan.FromSeconds(60));
        _jobs.RunDue();
        Assert.Equal(25, Queued("rate"));
    }

    [Fact]
    public void An_exponential_rate_doubles_each_time_its_criterion_is_met_up_to_the_maximum()
    {
        _registry.Group("fleet", 100);
        Assert.True(_jobs.CreateJob(Job("ramp", settings: new JobSettings { Rollout = new RolloutSettings(16, 2, 2.0, 2, null) })).IsSuccess);
        Assert.Equal(2, Queued("ramp")); // the base rate
        _jobs.RunDue();
        Assert.Equal(4, Queued("ramp")); // 2 notified: rate 4
        _jobs.RunDue();
        Assert.Equal(8, Queued("ramp")); // 4 notified: rate 8
        _jobs.RunDue();
        _jobs.RunDue();
        Assert.Equal(16, Queued("ramp")); // capped by maximumPerMinute within this minute
        _time.Advance(TimeSpan.FromMinutes(1));
        _jobs.RunDue();
        Assert.Equal(32, Queued("ramp"));
    }

    [Fact]
    public void An_execution_times_out_when_due_and_is_retried_as_a_new_execution()
    {
        _registry.Thing("lamp");
        var settings = new JobSettings { InProgressTimeoutMinutes = 10, Retry = [new RetryRule("TIMED_OUT", 1)] };
        Assert.True(_jobs.CreateJob(Job("slow", ["arn:aws:iot:us-east-1:000000000000:thing/lamp"], settings)).IsSuccess);
        var started = _jobs.StartNext("lamp", null, stepTimeoutInMinutes: 2).Execution!;
        Assert.Equal(120, _jobs.SecondsBeforeTimeout(started)); // the step timer, sooner than the job's 10 minutes

        _time.Advance(TimeSpan.FromSeconds(119));
        _jobs.RunDue();
        Assert.Equal(ExecutionStatus.InProgress, _jobs.DescribeJobExecution("slow", "lamp", 1).Value!.Status);

        // An update with a new step time-out restarts the step timer.
        Assert.Null(_jobs.Update("lamp", "slow", new JobUpdate { Status = ExecutionStatus.InProgress, StepTimeoutInMinutes = 5 }).Error);
        _time.Advance(TimeSpan.FromSeconds(2));
        _jobs.RunDue();
        Assert.Equal(ExecutionStatus.InProgress, _jobs.DescribeJobExecution("slow", "lamp", 1).Value!.Status);

        _time.Advance(TimeSpan.FromMinutes(5));
        _jobs.RunDue();
        var first = _jobs.DescribeJobExecution("slow", "lamp", 1).Value!;
        var retry = _jobs.DescribeJobExecution("slow", "lamp", null).Value!;
        Assert.Equal((ExecutionStatus.TimedOut, 2L, ExecutionStatus.Queued, 1), (first.Status, retry.ExecutionNumber, retry.Status, retry.RetryAttempt));

        // The retry has the job's in-progress time-out only, from its own start; no second retry.
        _jobs.StartNext("lamp", null, null);
        _time.Advance(TimeSpan.FromMinutes(10));
        _jobs.RunDue();
        Assert.Equal(ExecutionStatus.TimedOut, _jobs.DescribeJobExecution("slow", "lamp", null).Value!.Status);
        Assert.Equal(2L, _jobs.DescribeJobExecution("slow", "lamp", null).Value!.ExecutionNumber);
    }

    [Fact]
    public void Notify_next_follows_the_next_execution_and_terminal_states_stay_terminal()
    {
        _registry.Thing("lamp");
        var thing = new[] { "arn:aws:iot:us-east-1:000000000000:thing/lamp" };
        _jobs.CreateJob(Job("first", thing));
        _time.Advance(TimeSpan.FromSeconds(1));
        _jobs.CreateJob(Job("second", thing));
        Assert.True(_published.WaitFor(m => m.Topic.EndsWith("/notify-next", StringComparison.Ordinal) && m.Body.Contains("\"first\"", StringComparison.Ordinal)));
        Assert.Equal(1, _published.Count(m => m.Topic.EndsWith("/notify-next", StringComparison.Ordinal))); // the second job does not change the next one

        Assert.Null(_jobs.Update("lamp", "first", new JobUpdate { Status = ExecutionStatus.Succeeded }).Error);
        Assert.True(_published.WaitFor(m => m.Topic.EndsWith("/notify-next", StringComparison.Ordinal) && m.Body.Contains("\"second\"", StringComparison.Ordinal)));
        Assert.True(_published.WaitFor(m => m.Topic == "$aws/events/jobExecution/first/succeeded"));
        Assert.True(_published.WaitFor(m => m.Topic == "$aws/events/job/first/completed"));

        var again = _jobs.Update("lamp", "first", new JobUpdate { Status = ExecutionStatus.InProgress });
        Assert.Equal(("InvalidStateTransition", ExecutionStatus.Succeeded), (again.Error!.Code, again.Error.State!.Status));
        Assert.Equal("InvalidRequest", _jobs.Update("lamp", "second", new JobUpdate { Status = ExecutionStatus.Canceled }).Error!.Code);
        Assert.Equal("VersionMismatch", _jobs.Update("lamp", "second", new JobUpdate { Status = ExecutionStatus.Succeeded, ExpectedVersion = 7 }).Error!.Code);
    }

    [Theory]
    [InlineData("$aws/things/lamp/jobs/get", "lamp", null, JobTopicOperation.GetPending)]
    [InlineData("$aws/things/lamp/jobs/start-next", "lamp", null, JobTopicOperation.StartNext)]
    [InlineData("$aws/things/lamp/jobs/$next/get", "lamp", "$next", JobTopicOperation.Describe)]
    [InlineData("$aws/things/lamp/jobs/j-1/update", "lamp", "j-1", JobTopicOperation.Update)]
    public void Job_request_topics_parse(string topic, string thing, string? jobId, JobTopicOperation operation)
    {
        Assert.True(JobTopics.TryParse(topic, out var t, out var j, out var op));
        Assert.Equal((thing, jobId, operation), (t, j, op));
    }

    [Theory]
    [InlineData("$aws/things/lamp/jobs/notify")]
    [InlineData("$aws/things/lamp/jobs/notify-next")]
    [InlineData("$aws/things/lamp/jobs/get/accepted")]
    [InlineData("$aws/things/lamp/jobs/j-1/update/accepted")]
    [InlineData("$aws/things/lamp/shadow/get")]
    [InlineData("$aws/things//jobs/get")]
    [InlineData("devices/lamp/jobs/get")]
    public void Other_topics_are_not_job_requests(string topic) => Assert.False(JobTopics.TryParse(topic, out _, out _, out _));

    [Fact]
    public void Maintenance_windows_hold_the_rollout_until_one_opens_and_bad_windows_are_refused()
    {
        _registry.Group("fleet", 5);
        var windows = new SchedulingSettings(null, null, null, [new MaintenanceWindowSettings("cron(0 13 ? * FRI *)", 30)]);
        Assert.True(_jobs.CreateJob(Job("night", settings: new JobSettings { Scheduling = windows })).IsSuccess);
        Assert.Equal(0, Queued("night")); // Friday 12:00 UTC: the window opens at 13:00
        _time.Advance(TimeSpan.FromMinutes(59));
        _jobs.RunDue();
        Assert.Equal(0, Queued("night"));
        _time.Advance(TimeSpan.FromMinutes(1));
        _jobs.RunDue();
        Assert.Equal(5, Queued("night"));

        var lastDay = _jobs.CreateJob(Job("bad", settings: new JobSettings { Scheduling = new SchedulingSettings(null, null, null, [new MaintenanceWindowSettings("cron(0 2 L * ? *)", 60)]) }));
        Assert.Contains("L, W or #", lastDay.Error!.Message, StringComparison.Ordinal);
        var short_ = _jobs.CreateJob(Job("bad", settings: new JobSettings { Scheduling = new SchedulingSettings(null, null, null, [new MaintenanceWindowSettings("cron(0 2 * * ? *)", 10)]) }));
        Assert.Contains("30-1430", short_.Error!.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("cron(0 13 ? * FRI *)", "2026-12-04T12:00", "2026-12-04T13:00")]
    [InlineData("cron(0 13 ? * FRI *)", "2026-12-04T13:00", "2026-12-11T13:00")]
    [InlineData("cron(15/30 * * * ? *)", "2026-12-04T12:20", "2026-12-04T12:45")]
    [InlineData("cron(0 2 1 JAN,JUL ? *)", "2026-12-04T12:00", "2027-01-01T02:00")]
    [InlineData("cron(30 22 ? * 2-6 2027)", "2026-12-04T12:00", "2027-01-01T22:30")]
    public void Aws_cron_finds_the_next_window_start(string cron, string now, string next)
    {
        var parsed = AwsCron.Parse(cron);
        Assert.True(parsed.IsSuccess, parsed.Error?.Message);
        var at = DateTimeOffset.Parse(now + "Z", System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(DateTimeOffset.Parse(next + "Z", System.Globalization.CultureInfo.InvariantCulture), parsed.Value!.Next(at, TimeSpan.FromDays(400)));
    }

    [Theory]
    [InlineData("0 13 ? * FRI *")]
    [InlineData("cron(0 13 ? * FRI)")]
    [InlineData("cron(61 13 ? * FRI *)")]
    [InlineData("cron(0 13 ? * 5#2 *)")]
    [InlineData("cron(0 13 ? FOO * *)")]
    public void Aws_cron_refuses_what_it_cannot_run(string cron) => Assert.False(AwsCron.Parse(cron).IsSuccess);

    public void Dispose()
    {
        _jobs.Dispose();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }

    private static NewJob Job(string id, IReadOnlyList<string>? targets = null, JobSettings? settings = null) => new()
    {
        JobId = id,
        Targets = targets ?? ["arn:aws:iot:us-east-1:000000000000:thinggroup/fleet"],
        Document = """{"operation":"test"}""",
        Settings = settings ?? new JobSettings(),
    };

    private int Queued(string job) => _jobs.Counts(job).GetValueOrDefault(ExecutionStatus.Queued);

    /// <summary>Things and groups in memory, as the registry would answer.</summary>
    private sealed class Registry : IJobTargets
    {
        private readonly HashSet<string> _things = new(StringComparer.Ordinal);
        private readonly Dictionary<string, List<string>> _groups = new(StringComparer.Ordinal);

        public void Thing(string name) => _things.Add(name);

        public void Group(string name, int things)
        {
            _groups[name] = [.. Enumerable.Range(0, things).Select(i => $"{name}-{i:000}")];
            _things.UnionWith(_groups[name]);
        }

        public bool ThingExists(string thing) => _things.Contains(thing);

        public bool GroupExists(string group) => _groups.ContainsKey(group);

        public IReadOnlyCollection<string> ThingsInGroup(string group) => _groups[group];

        public IReadOnlyCollection<string> GroupArnsOf(string thing) =>
            [.. _groups.Where(g => g.Value.Contains(thing)).Select(g => Arn("thinggroup/" + g.Key))];

        public string Arn(string resource) => "arn:aws:iot:us-east-1:000000000000:" + resource;
    }

    /// <summary>What the service published, in order.</summary>
    private sealed class Published : IJobPublisher
    {
        private readonly ConcurrentQueue<(string Topic, string Body)> _messages = new();

        public void Reply(string topic, byte[] payload, string? requesterClientId) => _messages.Enqueue((topic, System.Text.Encoding.UTF8.GetString(payload)));

        public void Publish(string topic, byte[] payload) => _messages.Enqueue((topic, System.Text.Encoding.UTF8.GetString(payload)));

        public int Count(Func<(string Topic, string Body), bool> match) => _messages.Count(match);

        public bool WaitFor(Func<(string Topic, string Body), bool> match)
        {
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (DateTime.UtcNow < deadline)
            {
                if (_messages.Any(match))
                {
                    return true;
                }

                Thread.Sleep(10);
            }

            return false;
        }
    }
}
