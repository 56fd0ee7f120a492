using System.Globalization;
using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary>
/// Alarms on telemetry and notifications, against real peers: mosquitto clients publish the
/// telemetry and receive MQTT notifications, a local SMTP server (Debian's aiosmtpd) receives the
/// email, and a local HTTP receiver that fails its first answers receives the webhooks, which the
/// outbox retries. The lifecycle ACTIVE → ACKNOWLEDGED → CLEARED goes through the API and the CLI,
/// with who, when and why; violations and presence changes notify too; bad input is refused.
/// </summary>
public sealed class AlarmsTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly string _data = Path.Combine(Path.GetTempPath(), "trellis-alarms-" + Guid.NewGuid().ToString("N")[..8]);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Alarms_follow_their_condition_and_operators_and_every_step_is_notified_by_mqtt_webhook_and_email()
    {
        using var receivers = ExternalTool.StartBackground("/usr/bin/python3", [Path.Combine(AppContext.BaseDirectory, "Scripts", "receivers.py"), "2"]);
        Assert.True(await receivers.WaitForLineAsync(l => l.Contains("\"smtp\"", StringComparison.Ordinal), Timeout, Ct), receivers.Stderr);
        var ports = JsonNode.Parse(receivers.Lines[0])!;
        using var server = await ServerProcess.StartAsync(_data, Ct, new Dictionary<string, string>
        {
            ["TRELLIS_Smtp__Host"] = "127.0.0.1",
            ["TRELLIS_Smtp__Port"] = ports["smtp"]!.GetValue<int>().ToString(CultureInfo.InvariantCulture),
            ["TRELLIS_Smtp__From"] = "trellis@plant.example",
        });

        // Targets: refusals first, then one of each kind; a viewer may not add one.
        var hook = $"http://127.0.0.1:{ports["http"]!.GetValue<int>()}/alerts";
        var refused = new[]
        {
            await PutAsync(server, "/api/notifications/targets/bad", new { type = "mqtt", topic = "ops/#", events = new[] { "alarms" } }),
            await PutAsync(server, "/api/notifications/targets/bad", new { type = "webhook", url = "ftp://x", events = new[] { "alarms" } }),
            await PutAsync(server, "/api/notifications/targets/bad", new { type = "email", events = new[] { "alarms" } }),
            await PutAsync(server, "/api/notifications/targets/bad", new { type = "mqtt", topic = "ops/x", events = new[] { "weather" } }),
            await PutAsync(server, "/api/notifications/targets/bad", new { type = "mqtt", topic = "ops/x", events = new[] { "alarms" }, colour = "red" }),
            await PutAsync(server, "/api/alarm-models/bad", new { sql = "SELECT * FROM WHERE", severity = "CRITICAL" }),
            await PutAsync(server, "/api/alarm-models/bad", new { sql = "SELECT * FROM 'a/b'", severity = "SEVERE" }),
        };
        Assert.All(refused, r => Assert.Equal(400, r["status"]!.GetValue<int>()));
        Assert.Contains("weather", refused[3]["body"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("colour", refused[4]["body"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("SqlParseException", refused[5]["headers"]!["x-amzn-ErrorType"]!.GetValue<string>().Split(':')[0]);
        var viewer = (await server.SignedAsync("POST", "/api/users", """{"name":"watcher","role":"viewer"}""", Ct))["body"]!;
        var asViewer = await server.SignedAsync("PUT", "/api/notifications/targets/sneaky", """{"type":"webhook","url":"http://127.0.0.1:1/","events":["alarms"]}""", Ct,
            (viewer["accessKeyId"]!.GetValue<string>(), viewer["secretAccessKey"]!.GetValue<string>()));
        Assert.Equal(403, asViewer["status"]!.GetValue<int>());

        var created = new[]
        {
            await PutAsync(server, "/api/notifications/targets/ops-mqtt", new { type = "mqtt", topic = "ops/alerts", events = new[] { "alarms", "violations", "presence" } }),
            await PutAsync(server, "/api/notifications/targets/ops-hook", new { type = "webhook", url = hook, events = new[] { "alarms" } }),
            await PutAsync(server, "/api/notifications/targets/ops-mail", new { type = "email", to = new[] { "ops@plant.example" }, events = new[] { "alarms" }, minSeverity = "MAJOR" }),
            await PutAsync(server, "/api/alarm-models/overheat", new { sql = "SELECT temperature, topic(2) AS boiler FROM 'boilers/+/telemetry' WHERE temperature > 80", severity = "CRITICAL", thing = "topic(2)", description = "boiler too hot" }),
        };
        Assert.All(created, r => Assert.True(r["status"]!.GetValue<int>() == 200, r.ToJsonString()));
        Assert.Equal("topic(2)", created[3]["body"]!["thing"]!.GetValue<string>());

        // A registered thing comes and goes: presence notifications.
        using var alerts = await ExternalTool.StartSubscriberAsync([.. server.Anonymous("ops-console"), "-t", "ops/alerts", "-q", "1"], Timeout, Ct);
        await server.IotCallsAsync([("create_thing", new { thingName = "b1" })], Ct);
        await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. server.Anonymous("b1"), "-t", "boilers/b1/status", "-m", "up", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(await alerts.WaitForLineAsync(l => l.Contains("b1 is offline (CLIENT_INITIATED_DISCONNECT)", StringComparison.Ordinal), Timeout, Ct), "no presence notification: " + string.Join("\n", alerts.Lines));
        Assert.Contains(alerts.Lines, l => l.Contains("\"b1 is online\"", StringComparison.Ordinal) && l.Contains("\"kind\":\"presence\"", StringComparison.Ordinal));

        // Too hot: one alarm, however many messages say so; a message without the member says nothing.
        await PublishAsync(server, "boilers/b1/telemetry", """{"temperature": 85}""");
        await PublishAsync(server, "boilers/b1/telemetry", """{"temperature": 90}""");
        await PublishAsync(server, "boilers/b2/telemetry", """{"humidity": 3}""");
        Assert.True(await Eventually.TrueAsync(async () => (await AlarmsAsync(server, string.Empty)).Count == 1, Timeout, Ct));
        await Task.Delay(300, Ct);
        var open = await AlarmsAsync(server, string.Empty);
        var first = Assert.Single(open)!;
        Assert.Equal(("overheat", "b1", "CRITICAL", "ACTIVE"), (first["model"]!.GetValue<string>(), first["thingName"]!.GetValue<string>(), first["severity"]!.GetValue<string>(), first["state"]!.GetValue<string>()));
        Assert.Equal(("b1", 85), (first["details"]!["boiler"]!.GetValue<string>(), first["details"]!["temperature"]!.GetValue<int>()));
        var id = first["id"]!.GetValue<string>();

        // An operator acknowledges with the CLI; acknowledging twice is refused.
        var ack = await CliAsync(server, ["alarms", "ack", id, "--comment", "on my way"]);
        Assert.True(ack.ExitCode == 0, ack.Stdout + ack.Stderr);
        var again = await CliAsync(server, ["alarms", "ack", id]);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("InvalidStateTransitionException", again.Stderr, StringComparison.Ordinal);
        var listed = await CliAsync(server, ["alarms", "list", "--output", "json"]);
        Assert.Equal("ACKNOWLEDGED", JsonNode.Parse(listed.Stdout)!["alarms"]![0]!["state"]!.GetValue<string>());

        // Back to normal: the alarm clears itself. Too hot again: a new alarm, cleared by hand.
        await PublishAsync(server, "boilers/b1/telemetry", """{"temperature": 70}""");
        Assert.True(await Eventually.TrueAsync(async () => (await AlarmsAsync(server, string.Empty)).Count == 0, Timeout, Ct));
        var cleared = (await server.SignedAsync("GET", $"/api/alarms/{id}", null, Ct))["body"]!;
        Assert.Equal("CLEARED", cleared["state"]!.GetValue<string>());
        var history = cleared["history"]!.AsArray().Select(s => (s!["state"]!.GetValue<string>(), s["by"]!.GetValue<string>(), s["comment"]?.GetValue<string>())).ToList();
        Assert.Equal(3, history.Count);
        Assert.Equal(("ACTIVE", "trellis"), (history[0].Item1, history[0].Item2));
        Assert.Equal(("ACKNOWLEDGED", "on my way"), (history[1].Item1, history[1].Item3));
        Assert.NotEqual("trellis", history[1].Item2);
        Assert.Equal(("CLEARED", "trellis", "condition no longer met"), history[2]);

        await PublishAsync(server, "boilers/b1/telemetry", """{"temperature": 99}""");
        Assert.True(await Eventually.TrueAsync(async () => (await AlarmsAsync(server, string.Empty)).Count == 1, Timeout, Ct));
        var second = (await AlarmsAsync(server, string.Empty))[0]!["id"]!.GetValue<string>();
        Assert.NotEqual(id, second);
        var summary = (await server.SignedAsync("GET", "/api/fleet/summary", null, Ct))["body"]!;
        Assert.Equal((1, 1), (summary["activeAlarms"]!.GetValue<int>(), summary["activeAlarmsBySeverity"]!["CRITICAL"]!.GetValue<int>()));
        var handCleared = await server.SignedAsync("POST", $"/api/alarms/{second}/clear", """{"comment":"sensor replaced"}""", Ct);
        Assert.Equal("CLEARED", handCleared["body"]!["state"]!.GetValue<string>());
        Assert.Equal(2, (await AlarmsAsync(server, "?state=CLEARED")).Count);

        // A violation notifies too (a security profile on unregistered clients; one failed login is too many).
        await server.IotCallsAsync([
            ("create_security_profile", new { securityProfileName = "logins", behaviors = new[] { new { name = "no-bad-logins", metric = "aws:num-authorization-failures", criteria = new { comparisonOperator = "less-than", value = new { count = 1 }, durationSeconds = 1 } } } }),
            ("attach_security_profile", new { securityProfileName = "logins", securityProfileTargetArn = "arn:aws:iot:us-east-1:000000000000:all/unregistered-things" }),
        ], Ct);
        await ExternalTool.RunAsync("mosquitto_pub", ["-h", "127.0.0.1", "-p", server.MqttPort.ToString(CultureInfo.InvariantCulture), "-i", "intruder", "-u", "admin", "-P", "guess", "-t", "x", "-m", "x"], Timeout, cancellationToken: Ct);
        Assert.True(await alerts.WaitForLineAsync(l => l.Contains("\"kind\":\"violations\"", StringComparison.Ordinal) && l.Contains("intruder", StringComparison.Ordinal), Timeout, Ct), string.Join("\n", alerts.Lines));

        // Every alarm step reached each target: MQTT at once, the webhook after its two failures, email for each.
        var steps = new[] { "is ACTIVE", "is ACKNOWLEDGED", "is CLEARED", "is ACTIVE", "is CLEARED" };
        Assert.True(await Eventually.TrueAsync(() => alerts.Lines.Count(l => l.Contains("\"kind\":\"alarms\"", StringComparison.Ordinal)) == 5, Timeout, Ct), string.Join("\n", alerts.Lines));
        var mqttSteps = alerts.Lines.Where(l => l.Contains("\"kind\":\"alarms\"", StringComparison.Ordinal)).Select(l => JsonNode.Parse(l)!["subject"]!.GetValue<string>()).ToList();
        Assert.All(steps.Zip(mqttSteps), p => Assert.EndsWith(p.First, p.Second.Split(" (by")[0], StringComparison.Ordinal));
        Assert.True(await Eventually.TrueAsync(() => Received(receivers, "http").Count(r => r["status"]!.GetValue<int>() == 200) == 5, Timeout, Ct), string.Join("\n", receivers.Lines) + "\nserver:\n" + server.Output);
        var hooks = Received(receivers, "http");
        Assert.Equal([503, 503], hooks.Take(2).Select(r => r["status"]!.GetValue<int>()));
        var delivered = hooks.Where(r => r["status"]!.GetValue<int>() == 200).Select(r => JsonNode.Parse(r["body"]!.GetValue<string>())!).ToList();
        Assert.Equal(["ACTIVE", "ACKNOWLEDGED", "CLEARED", "ACTIVE", "CLEARED"], delivered.Select(d => d["details"]!["state"]!.GetValue<string>()));
        Assert.Equal(("/alerts", "CRITICAL", "b1"), (hooks[^1]["path"]!.GetValue<string>(), delivered[0]["severity"]!.GetValue<string>(), delivered[0]["thingName"]!.GetValue<string>()));
        Assert.True(await Eventually.TrueAsync(() => Received(receivers, "smtp").Count == 5, Timeout, Ct), string.Join("\n", receivers.Lines));
        var mail = Received(receivers, "smtp")[0];
        Assert.Equal(("trellis@plant.example", "ops@plant.example"), (mail["from"]!.GetValue<string>(), mail["to"]![0]!.GetValue<string>()));
        Assert.Equal("[Trellis] CRITICAL: Alarm overheat for b1 is ACTIVE", mail["subject"]!.GetValue<string>());
        Assert.Contains("\"temperature\": 85", mail["body"]!.GetValue<string>(), StringComparison.Ordinal);

        // A test notification on demand; deleting the model of an open alarm clears it.
        Assert.Equal(0, (await CliAsync(server, ["notify", "test", "ops-mail"])).ExitCode);
        Assert.True(await Eventually.TrueAsync(() => Received(receivers, "smtp").Any(m => m["subject"]!.GetValue<string>().Contains("Test notification", StringComparison.Ordinal)), Timeout, Ct));
        await PublishAsync(server, "boilers/b3/telemetry", """{"temperature": 81}""");
        Assert.True(await Eventually.TrueAsync(async () => (await AlarmsAsync(server, string.Empty)).Count == 1, Timeout, Ct));
        Assert.Equal(0, (await CliAsync(server, ["alarms", "model-delete", "overheat"])).ExitCode);
        Assert.Empty(await AlarmsAsync(server, string.Empty));
    }

    public void Dispose()
    {
        if (Directory.Exists(_data))
        {
            Directory.Delete(_data, recursive: true);
        }
    }

    private static Task<JsonNode> PutAsync(ServerProcess server, string path, object body) =>
        server.SignedAsync("PUT", path, System.Text.Json.JsonSerializer.Serialize(body), Ct);

    private static Task PublishAsync(ServerProcess server, string topic, string payload) =>
        ExternalTool.RunCheckedAsync("mosquitto_pub", [.. server.Anonymous("boiler-gateway"), "-t", topic, "-m", payload, "-q", "1"], Timeout, cancellationToken: Ct);

    private static async Task<List<JsonNode?>> AlarmsAsync(ServerProcess server, string query) =>
        [.. (await server.SignedAsync("GET", "/api/alarms" + query, null, Ct))["body"]!["alarms"]!.AsArray()];

    private static List<JsonNode> Received(ExternalTool.Background receivers, string kind) =>
        [.. receivers.Lines.Skip(1).Select(l => JsonNode.Parse(l)!).Where(r => r["kind"]?.GetValue<string>() == kind)];

    private static Task<ExternalTool.Result> CliAsync(ServerProcess server, string[] args) =>
        ExternalTool.RunAsync(TrellisCli.FileName, [.. TrellisCli.Leading, .. args, "--endpoint", server.Endpoint, "--data", server.DataDirectory], TimeSpan.FromSeconds(60), new Dictionary<string, string> { ["AWS_PROFILE"] = "trellis" }, Ct);
}
