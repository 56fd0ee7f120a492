using System.Formats.Cbor;
using System.Globalization;
using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary>
/// Device Defender Detect through boto3 and mosquitto clients: security profiles and their refusals,
/// cloud-side metrics (message counts, sizes, authorization failures, source addresses) from real
/// clients, device-side metrics reports in JSON and CBOR with their accepted/rejected replies,
/// violations that start and clear, events, a statistical threshold over the fleet, and violations
/// invalidated when their profile goes.
/// </summary>
public sealed class DefenderTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly string _data = Path.Combine(Path.GetTempPath(), "trellis-defender-" + Guid.NewGuid().ToString("N")[..8]);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static object Behavior(string name, string metric, string op, object? value = null, int? duration = null, string? statistic = null, int? toClear = null) => new
    {
        name,
        metric,
        criteria = new Dictionary<string, object?>
        {
            ["comparisonOperator"] = op,
            ["value"] = value,
            ["durationSeconds"] = duration,
            ["statisticalThreshold"] = statistic is null ? null : new { statistic },
            ["consecutiveDatapointsToAlarm"] = 1,
            ["consecutiveDatapointsToClear"] = toClear ?? 1,
        }.Where(p => p.Value is not null).ToDictionary(p => p.Key, p => p.Value),
    };

    [Fact]
    public async Task Cloud_and_device_side_behaviors_raise_and_clear_violations_from_real_clients()
    {
        using var server = await ServerProcess.StartAsync(_data, Ct);
        const string group = "arn:aws:iot:us-east-1:000000000000:thinggroup/cams";
        var behaviors = new[]
        {
            // Five quiet windows to clear (10 s): both must still be active when the last of the six
            // violations below is raised, however slowly a loaded machine runs the clients between.
            Behavior("chatty", "aws:num-messages-sent", "less-than", new { count = 5 }, duration: 2, toClear: 5),
            Behavior("denied", "aws:num-authorization-failures", "less-than", new { count = 1 }, duration: 2, toClear: 5),
            Behavior("big", "aws:message-byte-size", "less-than-equals", new { count = 100 }),
            Behavior("private-net", "aws:source-ip-address", "in-cidr-set", new { cidrs = new[] { "10.0.0.0/8" } }),
            Behavior("ports", "aws:listening-tcp-ports", "in-port-set", new { ports = new[] { 443, 8883 } }),
            Behavior("sockets", "aws:num-established-tcp-connections", "less-than-equals", new { count = 3 }),
        };
        var setup = await server.IotCallsAsync([
            ("create_thing", new { thingName = "cam-1" }),
            ("create_thing", new { thingName = "cam-2" }),
            ("create_thing_group", new { thingGroupName = "cams" }),
            ("add_thing_to_thing_group", new { thingGroupName = "cams", thingName = "cam-1" }),
            ("add_thing_to_thing_group", new { thingGroupName = "cams", thingName = "cam-2" }),
            ("create_security_profile", new { securityProfileName = "cameras", securityProfileDescription = "what a camera does", behaviors }),
            ("attach_security_profile", new { securityProfileName = "cameras", securityProfileTargetArn = group }),
            ("describe_security_profile", new { securityProfileName = "cameras" }),
            ("list_targets_for_security_profile", new { securityProfileName = "cameras" }),
            ("list_security_profiles_for_target", new { securityProfileTargetArn = group }),
            ("list_security_profiles", new { metricName = "aws:message-byte-size" }),
        ], Ct);
        Assert.All(setup, r => Assert.True(r!["status"]!.GetValue<int>() == 200, r.ToJsonString()));
        var described = setup[7]!["body"]!;
        Assert.Equal(("arn:aws:iot:us-east-1:000000000000:securityprofile/cameras", 1L, 6), (described["securityProfileArn"]!.GetValue<string>(), described["version"]!.GetValue<long>(), described["behaviors"]!.AsArray().Count));
        Assert.Equal(100, described["behaviors"]![2]!["criteria"]!["value"]!["count"]!.GetValue<int>());
        Assert.Equal(group, setup[8]!["body"]!["securityProfileTargets"]![0]!["arn"]!.GetValue<string>());
        Assert.Equal("cameras", setup[9]!["body"]!["securityProfileTargetMappings"]![0]!["securityProfileIdentifier"]!["name"]!.GetValue<string>());
        Assert.Equal("cameras", setup[10]!["body"]!["securityProfileIdentifiers"]![0]!["name"]!.GetValue<string>());

        // Refusals name what is wrong; nothing is created.
        var refused = await server.IotCallsAsync([
            ("create_security_profile", new { securityProfileName = "bad", behaviors = new[] { Behavior("x", "aws:num-messages-snet", "less-than", new { count = 1 }, duration: 60) } }),
            ("create_security_profile", new { securityProfileName = "bad", behaviors = new[] { Behavior("x", "aws:source-ip-address", "less-than", new { count = 1 }) } }),
            ("create_security_profile", new { securityProfileName = "bad", behaviors = new[] { Behavior("x", "aws:num-disconnects", "less-than", new { count = 1 }) } }),
            ("create_security_profile", new { securityProfileName = "bad", behaviors = new[] { Behavior("x", "aws:listening-tcp-ports", "in-port-set", new { ports = new[] { 70000 } }) } }),
            ("create_security_profile", new { securityProfileName = "cameras" }),
            ("attach_security_profile", new { securityProfileName = "cameras", securityProfileTargetArn = "arn:aws:iot:us-east-1:000000000000:thinggroup/nope" }),
            ("attach_security_profile", new { securityProfileName = "cameras", securityProfileTargetArn = "arn:aws:iot:us-east-1:000000000000:thing/cam-1" }),
            ("validate_security_profile_behaviors", new { behaviors = new[] { Behavior("x", "aws:num-messages-sent", "in-set", new { count = 1 }, duration: 60) } }),
            ("describe_security_profile", new { securityProfileName = "bad" }),
        ], Ct);
        Assert.Equal(
            ["InvalidRequestException", "InvalidRequestException", "InvalidRequestException", "InvalidRequestException", "ResourceAlreadyExistsException", "ResourceNotFoundException", "InvalidRequestException"],
            refused[..7].Select(r => r!["error"]!.GetValue<string>()));
        Assert.Contains("unknown metric 'aws:num-messages-snet'", refused[0]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("in-cidr-set", refused[1]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("durationSeconds", refused[2]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.False(refused[7]!["body"]!["valid"]!.GetValue<bool>());
        Assert.Contains("comparisonOperator", refused[7]!["body"]!["validationErrors"]![0]!["errorMessage"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(404, refused[8]!["status"]!.GetValue<int>());

        // Device-side reports: the replies say accepted or rejected, in the report's format.
        using var replies = await ExternalTool.StartSubscriberAsync([.. server.Anonymous("cam-1-replies"), "-t", "$aws/things/cam-1/defender/metrics/#", "-v"], Timeout, Ct);
        var report = new JsonObject
        {
            ["header"] = new JsonObject { ["report_id"] = 1530304554, ["version"] = "1.0" },
            ["metrics"] = new JsonObject
            {
                ["listening_tcp_ports"] = new JsonObject { ["ports"] = new JsonArray(new JsonObject { ["interface"] = "eth0", ["port"] = 443 }, new JsonObject { ["port"] = 22 }), ["total"] = 2 },
                ["tcp_connections"] = new JsonObject { ["established_connections"] = new JsonObject { ["connections"] = new JsonArray(new JsonObject { ["remote_addr"] = "192.0.2.7:443" }), ["total"] = 1 } },
                ["network_stats"] = new JsonObject { ["bytes_in"] = 29152, ["bytes_out"] = 26485, ["packets_in"] = 220, ["packets_out"] = 271 },
            },
        };
        await PublishAsync(server, "$aws/things/cam-1/defender/metrics/json", report.ToJsonString());
        await PublishAsync(server, "$aws/things/cam-1/defender/metrics/json", "{\"header\": {\"report_id\": 2, \"version\": \"1.0\"}, \"metrics\": {\"network_stats\": {\"bytes_in\": \"lots\"}}}");
        await PublishAsync(server, "$aws/things/cam-1/defender/metrics/json", "{not json");
        await PublishAsync(server, "$aws/things/cam-1/defender/metrics/json", "{\"metrics\": {}}");
        Assert.True(await Eventually.TrueAsync(() => replies.Lines.Count(l => l.StartsWith("$aws/things/cam-1/defender/metrics/json/", StringComparison.Ordinal)) >= 4, Timeout, Ct), string.Join("\n", replies.Lines));
        var lines = replies.Lines.Where(l => l.StartsWith("$aws/things/cam-1/defender/metrics/json/", StringComparison.Ordinal)).ToList();
        Assert.StartsWith("$aws/things/cam-1/defender/metrics/json/accepted {", lines[0], StringComparison.Ordinal);
        Assert.Contains("\"reportId\":1530304554", lines[0], StringComparison.Ordinal);
        Assert.All(lines[1..4], l => Assert.StartsWith("$aws/things/cam-1/defender/metrics/json/rejected {", l, StringComparison.Ordinal));
        Assert.Contains("\"ErrorCode\":\"InvalidPayload\"", lines[1], StringComparison.Ordinal);
        Assert.Contains("not valid JSON", lines[2], StringComparison.Ordinal);
        Assert.Contains("\"ErrorCode\":\"MissingHeader\"", lines[3], StringComparison.Ordinal);

        // Then cam-1 sends 20 messages, one of 200 bytes; cam-2 fails to authenticate. Both come from 127.0.0.1.
        var port = server.MqttPort.ToString(CultureInfo.InvariantCulture);
        await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. server.Anonymous("cam-1"), "-t", "cams/1/frames", "-m", "x", "--repeat", "20", "-q", "1"], Timeout, cancellationToken: Ct);
        await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. server.Anonymous("cam-1"), "-t", "cams/1/frames", "-m", new string('x', 200), "-q", "1"], Timeout, cancellationToken: Ct);
        var denied = await ExternalTool.RunAsync("mosquitto_pub", ["-h", "127.0.0.1", "-p", port, "-i", "cam-2", "-u", "nobody", "-P", "wrong", "-t", "x", "-m", "x"], Timeout, cancellationToken: Ct);
        Assert.NotEqual(0, denied.ExitCode);

        // Every behavior that was broken has an active violation, with the value that broke it.
        Assert.True(await Eventually.TrueAsync(async () => (await ActiveAsync(server)).Count >= 6, Timeout, Ct), string.Join(", ", await ActiveAsync(server)));
        var active = await ActiveAsync(server);
        Assert.Equal(["cam-1/big", "cam-1/chatty", "cam-1/ports", "cam-1/private-net", "cam-2/denied", "cam-2/private-net"], active.Keys.Order(StringComparer.Ordinal));
        Assert.True(active["cam-1/chatty"]!["lastViolationValue"]!["count"]!.GetValue<long>() >= 5);
        Assert.Equal(200, active["cam-1/big"]!["lastViolationValue"]!["count"]!.GetValue<long>());
        Assert.Equal([22, 443], active["cam-1/ports"]!["lastViolationValue"]!["ports"]!.AsArray().Select(p => p!.GetValue<int>()));
        Assert.Equal(["127.0.0.1"], active["cam-2/private-net"]!["lastViolationValue"]!["cidrs"]!.AsArray().Select(p => p!.GetValue<string>()));
        Assert.Equal("cameras", active["cam-2/denied"]!["securityProfileName"]!.GetValue<string>());

        // A CBOR report that listens only where allowed clears the port violation; cam-1's quiet
        // windows clear the message count, and cam-2's its authorization failures.
        using var cborReplies = await ExternalTool.StartSubscriberAsync([.. server.Anonymous("cam-1-cbor"), "-t", "$aws/things/cam-1/defender/metrics/cbor/accepted", "-C", "1", "-F", "%t %x"], Timeout, Ct);
        var cbor = Path.Combine(_data, "report.cbor");
        await File.WriteAllBytesAsync(cbor, CborReport(reportId: 1530304600, port: 8883), Ct);
        await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. server.Anonymous("cam-1-agent"), "-t", "$aws/things/cam-1/defender/metrics/cbor", "-f", cbor, "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(await Eventually.TrueAsync(() => cborReplies.Lines.Any(l => l.StartsWith("$aws/things/cam-1/defender/metrics/cbor/accepted ", StringComparison.Ordinal)), Timeout, Ct), string.Join("\n", cborReplies.Lines));
        var cborReply = CborMap(Convert.FromHexString(cborReplies.Lines.First(l => l.StartsWith("$aws/things/cam-1/defender/metrics/cbor/accepted ", StringComparison.Ordinal)).Trim().Split(' ')[1]));
        Assert.Equal(("ACCEPTED", "1530304600"), (cborReply["status"], cborReply["reportId"]));
        Assert.True(await Eventually.TrueAsync(async () =>
        {
            var keys = (await ActiveAsync(server)).Keys.Order(StringComparer.Ordinal).ToList();
            return keys.SequenceEqual(["cam-1/big", "cam-1/private-net", "cam-2/private-net"]);
        }, Timeout, Ct), string.Join(", ", (await ActiveAsync(server)).Keys));

        var now = DateTimeOffset.UtcNow;
        var events = await server.IotCallsAsync([
            ("list_violation_events", new { startTime = now.AddMinutes(-5).ToUnixTimeSeconds(), endTime = now.AddMinutes(1).ToUnixTimeSeconds(), thingName = "cam-1" }),
            ("list_active_violations", new { behaviorCriteriaType = "STATISTICAL" }),
        ], Ct);
        var history = events[0]!["body"]!["violationEvents"]!.AsArray().Select(e => e!["behavior"]!["name"]!.GetValue<string>() + ":" + e["violationEventType"]!.GetValue<string>()).ToList();
        Assert.Contains("chatty:in-alarm", history);
        Assert.Contains("chatty:alarm-cleared", history);
        Assert.Contains("ports:alarm-cleared", history);
        Assert.True(history.IndexOf("chatty:in-alarm") < history.IndexOf("chatty:alarm-cleared"), string.Join(", ", history));
        Assert.Empty(events[1]!["body"]!["activeViolations"]!.AsArray());
        var noTimes = await server.SignedAsync("GET", "/violation-events?thingName=cam-1", null, Ct);
        Assert.Equal((400, "InvalidRequestException"), (noTimes["status"]!.GetValue<int>(), noTimes["headers"]!["x-amzn-ErrorType"]?.GetValue<string>()?.Split(':')[0]));

        // An operator marks a violation; deleting the profile invalidates what is left.
        var big = (await ActiveAsync(server))["cam-1/big"]!["violationId"]!.GetValue<string>();
        var marked = await server.IotCallsAsync([
            ("put_verification_state_on_violation", new { violationId = big, verificationState = "BENIGN_POSITIVE", verificationStateDescription = "firmware upload" }),
            ("list_active_violations", new { verificationState = "BENIGN_POSITIVE" }),
            ("delete_security_profile", new { securityProfileName = "cameras" }),
        ], Ct);
        Assert.Equal(big, marked[1]!["body"]!["activeViolations"]![0]!["violationId"]!.GetValue<string>());
        Assert.Equal(200, marked[2]!["status"]!.GetValue<int>());
        Assert.True(await Eventually.TrueAsync(async () => (await ActiveAsync(server)).Count == 0, Timeout, Ct), "the deleted profile's violations stayed active");
        var after = await server.IotCallsAsync([("list_violation_events", new { startTime = now.AddMinutes(-5).ToUnixTimeSeconds(), endTime = DateTimeOffset.UtcNow.AddMinutes(1).ToUnixTimeSeconds(), thingName = "cam-2" })], Ct);
        Assert.Contains(after[0]!["body"]!["violationEvents"]!.AsArray(), e => e!["violationEventType"]!.GetValue<string>() == "alarm-invalidated");
    }

    [Fact]
    public async Task A_statistical_threshold_picks_out_the_one_client_far_above_its_fleet()
    {
        using var server = await ServerProcess.StartAsync(_data, Ct);
        var setup = await server.IotCallsAsync([
            ("create_security_profile", new { securityProfileName = "fleet-norm", behaviors = new[] { Behavior("rate", "aws:num-messages-sent", "less-than-equals", duration: 2, statistic: "p90", toClear: 2) } }),
            ("attach_security_profile", new { securityProfileName = "fleet-norm", securityProfileTargetArn = "arn:aws:iot:us-east-1:000000000000:all/unregistered-things" }),
        ], Ct);
        Assert.All(setup, r => Assert.True(r!["status"]!.GetValue<int>() == 200, r.ToJsonString()));

        // Ten sensors publish five messages a second; one publishes a hundred.
        var clients = Enumerable.Range(0, 10)
            .Select(i => ExternalTool.StartBackground("mosquitto_pub", [.. server.Anonymous($"sensor-{i}"), "-t", $"sensors/{i}", "-m", "1", "--repeat", "100000", "--repeat-delay", "0.2"]))
            .Append(ExternalTool.StartBackground("mosquitto_pub", [.. server.Anonymous("sensor-loud"), "-t", "sensors/loud", "-m", "1", "--repeat", "1000000", "--repeat-delay", "0.01"]))
            .ToList();
        try
        {
            Assert.True(await Eventually.TrueAsync(async () => (await ActiveAsync(server)).ContainsKey("sensor-loud/rate"), Timeout, Ct), "the loud client was not picked out");
            await Task.Delay(4500, Ct); // two more windows
            var active = await ActiveAsync(server);
            Assert.Equal(["sensor-loud/rate"], active.Keys);
            Assert.True(active["sensor-loud/rate"]!["lastViolationValue"]!["count"]!.GetValue<long>() > 40);
            Assert.NotNull(active["sensor-loud/rate"]!["behavior"]!["criteria"]!["statisticalThreshold"]);
            var statistical = await server.IotCallsAsync([("list_active_violations", new { behaviorCriteriaType = "STATISTICAL", securityProfileName = "fleet-norm" })], Ct);
            Assert.Single(statistical[0]!["body"]!["activeViolations"]!.AsArray());
        }
        finally
        {
            clients.ForEach(c => c.Dispose());
        }

        // Silent, it falls back within the fleet (two windows to clear).
        Assert.True(await Eventually.TrueAsync(async () => (await ActiveAsync(server)).Count == 0, Timeout, Ct), "the violation did not clear once the client stopped");

        // Updates follow the version; a detached profile is no longer attached.
        const string all = "arn:aws:iot:us-east-1:000000000000:all/unregistered-things";
        var changed = await server.IotCallsAsync([
            ("update_security_profile", new { securityProfileName = "fleet-norm", securityProfileDescription = "p99 now", expectedVersion = 1, behaviors = new[] { Behavior("rate", "aws:num-messages-sent", "less-than-equals", duration: 2, statistic: "p99") } }),
            ("update_security_profile", new { securityProfileName = "fleet-norm", securityProfileDescription = "stale", expectedVersion = 1 }),
            ("update_security_profile", new { securityProfileName = "fleet-norm", deleteBehaviors = true, behaviors = new[] { Behavior("rate", "aws:num-messages-sent", "less-than", new { count = 1 }, duration: 2) } }),
            ("detach_security_profile", new { securityProfileName = "fleet-norm", securityProfileTargetArn = all }),
            ("detach_security_profile", new { securityProfileName = "fleet-norm", securityProfileTargetArn = all }),
            ("list_targets_for_security_profile", new { securityProfileName = "fleet-norm" }),
        ], Ct);
        Assert.Equal((2L, "p99 now", "p99"), (changed[0]!["body"]!["version"]!.GetValue<long>(), changed[0]!["body"]!["securityProfileDescription"]!.GetValue<string>(),
            changed[0]!["body"]!["behaviors"]![0]!["criteria"]!["statisticalThreshold"]!["statistic"]!.GetValue<string>()));
        Assert.Equal(["VersionConflictException", "InvalidRequestException"], changed[1..3].Select(r => r!["error"]!.GetValue<string>()));
        Assert.Equal([200, 404], changed[3..5].Select(r => r!["status"]!.GetValue<int>()));
        Assert.Empty(changed[5]!["body"]!["securityProfileTargets"]!.AsArray());
    }

    public void Dispose()
    {
        if (Directory.Exists(_data))
        {
            Directory.Delete(_data, recursive: true);
        }
    }

    private static Task PublishAsync(ServerProcess server, string topic, string payload) =>
        ExternalTool.RunCheckedAsync("mosquitto_pub", [.. server.Anonymous("cam-1-agent"), "-t", topic, "-m", payload, "-q", "1"], Timeout, cancellationToken: Ct);

    /// <summary>Active violations by "thing/behavior".</summary>
    private static async Task<Dictionary<string, JsonNode?>> ActiveAsync(ServerProcess server)
    {
        var result = (await server.IotCallsAsync([("list_active_violations", new { })], Ct))[0]!;
        return result["body"]!["activeViolations"]!.AsArray()
            .ToDictionary(v => v!["thingName"]!.GetValue<string>() + "/" + v["behavior"]!["name"]!.GetValue<string>(), v => v);
    }

    /// <summary>A metrics report in CBOR with AWS's short names: one listening TCP port, no connections.</summary>
    private static byte[] CborReport(long reportId, int port)
    {
        var w = new CborWriter();
        w.WriteStartMap(2);
        w.WriteTextString("hed");
        w.WriteStartMap(2);
        w.WriteTextString("rid");
        w.WriteInt64(reportId);
        w.WriteTextString("v");
        w.WriteTextString("1.0");
        w.WriteEndMap();
        w.WriteTextString("met");
        w.WriteStartMap(2);
        w.WriteTextString("tp");
        w.WriteStartMap(2);
        w.WriteTextString("pts");
        w.WriteStartArray(1);
        w.WriteStartMap(1);
        w.WriteTextString("pt");
        w.WriteInt32(port);
        w.WriteEndMap();
        w.WriteEndArray();
        w.WriteTextString("t");
        w.WriteInt32(1);
        w.WriteEndMap();
        w.WriteTextString("tc");
        w.WriteStartMap(1);
        w.WriteTextString("ec");
        w.WriteStartMap(1);
        w.WriteTextString("t");
        w.WriteInt32(0);
        w.WriteEndMap();
        w.WriteEndMap();
        w.WriteEndMap();
        w.WriteEndMap();
        return w.Encode();
    }

    /// <summary>A flat CBOR map's text and integer members as strings.</summary>
    private static Dictionary<string, string> CborMap(byte[] bytes)
    {
        var r = new CborReader(bytes);
        var map = new Dictionary<string, string>();
        var count = r.ReadStartMap() ?? 0;
        for (var i = 0; i < count; i++)
        {
            var key = r.ReadTextString();
            map[key] = r.PeekState() switch
            {
                CborReaderState.TextString => r.ReadTextString(),
                CborReaderState.UnsignedInteger or CborReaderState.NegativeInteger => r.ReadInt64().ToString(CultureInfo.InvariantCulture),
                _ => Skip(r),
            };
        }

        return map;
    }

    private static string Skip(CborReader r)
    {
        r.SkipValue();
        return "?";
    }
}
