using System.Globalization;
using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Gateway;

/// <summary>
/// <c>trellis gateway</c> end to end: a Modbus device (pymodbus) behind the gateway, the gateway on
/// its own certificate (made by <c>trellis provision</c>) connected to a real Trellis server, the
/// leaf's values read with mosquitto_sub, its desired shadow set with boto3 and the register read
/// back with mbpoll.
/// </summary>
[Collection(TrellisServerGroup.Name)]
public sealed class GatewayModbusTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private const string GatewayPolicy = """
        {"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
          {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":["arn:aws:iot:*:*:topic/devices/*","arn:aws:iot:*:*:topic/$aws/things/*/shadow/*",
            "arn:aws:iot:*:*:topic/$trellis/gateways/${iot:Connection.Thing.ThingName}/*"]},
          {"Effect":"Allow","Action":"iot:Subscribe","Resource":"arn:aws:iot:*:*:topicfilter/$aws/things/*/shadow/*"}]}
        """;

    [Fact]
    public async Task A_modbus_device_behind_the_gateway_reports_its_registers_and_takes_its_desired_setpoint()
    {
        var gateway = TrellisHost.Unique("gw");
        var leaf = TrellisHost.Unique("press");
        var policy = TrellisHost.Unique("gwpol");
        var setup = await host.IotCallsAsync([
            ("create_thing", new { thingName = leaf }),
            ("create_policy", new { policyName = policy, policyDocument = GatewayPolicy }),
            ("create_topic_rule", new
            {
                ruleName = leaf.Replace("-", "_", StringComparison.Ordinal) + "_store",
                topicRulePayload = new
                {
                    sql = $"SELECT temperature, speed FROM 'devices/{leaf}/telemetry'",
                    actions = new object[] { new { timestream = new { roleArn = "r", databaseName = "trellis", tableName = "t", dimensions = new[] { new { name = "thing", value = "${topic(2)}" } } } } },
                },
            }),
        ], Ct);
        Assert.All(setup, r => Assert.Equal(200, r!["status"]!.GetValue<int>()));
        var folder = Path.Combine(host.DataDirectory, "gateways", gateway);
        var provision = await TrellisCli.RunAsync(host, ["provision", "--thing", gateway, "--out", folder, "--policy", policy], Ct);
        Assert.True(provision.ExitCode == 0, provision.Output);

        var port = HttpReceiver.FreePort();
        using var device = ExternalTool.StartBackground("/usr/bin/python3", [Path.Combine(AppContext.BaseDirectory, "Scripts", "modbus_server.py"), port.ToString(CultureInfo.InvariantCulture)]);
        var map = Path.Combine(folder, "modbus.json");
        await File.WriteAllTextAsync(map, $$"""
            {"devices": [{"thing": "{{leaf}}", "host": "127.0.0.1", "port": {{port}}, "intervalMs": 300, "points": [
              {"name": "temperature", "table": "holding", "address": 0, "type": "float32"},
              {"name": "speed", "table": "input", "address": 0, "scale": 0.1},
              {"name": "setpoint", "table": "holding", "address": 10, "type": "float32", "writable": true}]}]}
            """, Ct);

        var watcher = TrellisHost.Unique("gww");
        using var telemetry = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(watcher), "-t", $"devices/{leaf}/telemetry", "-q", "1"]);
        await host.WaitSubscribedAsync(watcher, telemetry);
        using var run = ExternalTool.StartBackground(TrellisCli.FileName, [.. TrellisCli.Leading, "gateway", "--identity", folder, "--data", Path.Combine(folder, "data"), "--mqtt", "off", "--modbus", map]);

        // Polled values arrive upstream as the leaf's telemetry.
        Assert.True(await telemetry.WaitForLineAsync(l => l.Contains("\"temperature\":21.5", StringComparison.Ordinal), Timeout, Ct),
            "no telemetry: " + string.Join('|', telemetry.Lines) + run.Stderr + string.Join('|', run.Lines) + device.Stderr);
        var values = JsonNode.Parse(telemetry.Lines.Last(l => l.Contains("temperature", StringComparison.Ordinal)))!;
        Assert.Equal(123.4, values["speed"]!.GetValue<double>(), 6);

        // Into the time-series store through a topic rule, as any device's telemetry.
        var from = DateTimeOffset.UtcNow.AddMinutes(-5).ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture);
        var to = DateTimeOffset.UtcNow.AddMinutes(5).ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture);
        Assert.True(await Eventually.TrueAsync(async () =>
        {
            var stored = await host.SignedRequestAsync("GET", $"/api/telemetry/things/{leaf}/temperature?from={from}&to={to}", null, Ct);
            return stored["body"]?["points"]?.AsArray().Any(p => p!["v"]!.GetValue<double>() == 21.5) == true;
        }, Timeout, Ct), "the leaf's temperature did not reach the time-series store");

        // The leaf's desired setpoint, set through boto3, reaches the register and is reported.
        var desired = await host.IotCallsAsync([("data:update_thing_shadow", new { thingName = leaf, payload = new { state = new { desired = new { setpoint = 42.25 } } } })], Ct);
        Assert.Equal(200, desired[0]!["status"]!.GetValue<int>());
        Assert.True(await Eventually.TrueAsync(async () => await MbpollAsync(port) == "42.25", Timeout, Ct), "the setpoint was not written: " + string.Join('|', run.Lines) + run.Stderr);
        Assert.True(await Eventually.TrueAsync(async () =>
        {
            var shadow = await host.IotCallsAsync([("data:get_thing_shadow", new { thingName = leaf })], Ct);
            return shadow[0]!["body"]!["payload"]!["state"]!["reported"]?["setpoint"]?.GetValue<double>() == 42.25;
        }, Timeout, Ct), "the written setpoint was not reported");
        Assert.True(await telemetry.WaitForLineAsync(l => l.Contains("\"setpoint\":42.25", StringComparison.Ordinal), Timeout, Ct), "the new setpoint was not polled");

        // The polled device is the gateway's leaf upstream, online while it answers.
        var thing = await host.IotCallsAsync([("describe_thing", new { thingName = leaf })], Ct);
        Assert.Equal(gateway, thing[0]!["body"]!["attributes"]!["gateway"]?.GetValue<string>());
        Assert.True(await Eventually.TrueAsync(() => ConnectedAsync(leaf), Timeout, Ct), "the Modbus leaf is not online upstream: " + string.Join('|', run.Lines));
        device.Dispose(); // the PLC goes away
        Assert.True(await Eventually.TrueAsync(async () => !await ConnectedAsync(leaf), Timeout, Ct), "the Modbus leaf stayed online after its device stopped answering");
    }

    [Fact]
    public async Task The_simulated_line_PLC_is_polled_by_a_real_gateway_and_takes_its_setpoint_from_the_shadow()
    {
        var state = Path.Combine(host.DataDirectory, TrellisHost.Unique("plcsim"));
        var port = HttpReceiver.FreePort();
        using var simulate = ExternalTool.StartBackground(TrellisCli.FileName, [.. TrellisCli.Leading, "simulate", "--profile", "industrial", "--devices", "1", "--seconds", "25", "--interval-ms", "1000",
            "--state", state, "--plc", $"127.0.0.1:{port}", "--endpoint", host.Endpoint, "--data", host.DataDirectory, "--output", "json"]);
        Assert.True(await Eventually.TrueAsync(() => simulate.Stderr.Contains("the line's PLC answers Modbus TCP", StringComparison.Ordinal), Timeout, Ct), simulate.Stderr);

        // mbpoll reads the setpoint the PLC starts with, in the layout its register map states.
        Assert.Equal("185", await MbpollAsync(port));
        var map = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(state, "plc-modbus.json"), Ct))!;
        Assert.Equal(port, map["devices"]![0]!["port"]!.GetValue<int>());
        const string Plc = "sim-industrial-plc";

        // A real gateway polls it with that map; the line's values arrive upstream as the leaf's telemetry.
        var (_, folder) = await ProvisionGatewayAsync("gwplc");
        var watcher = TrellisHost.Unique("gww");
        using var telemetry = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(watcher), "-t", $"devices/{Plc}/telemetry", "-q", "1"]);
        await host.WaitSubscribedAsync(watcher, telemetry);
        using var run = ExternalTool.StartBackground(TrellisCli.FileName, [.. TrellisCli.Leading, "gateway", "--identity", folder, "--data", Path.Combine(folder, "data"), "--mqtt", "off", "--modbus", Path.Combine(state, "plc-modbus.json")]);
        Assert.True(await telemetry.WaitForLineAsync(l => l.Contains("\"partsCount\"", StringComparison.Ordinal) && l.Contains("\"lineSpeed\"", StringComparison.Ordinal), Timeout, Ct),
            "no PLC telemetry: " + string.Join('|', run.Lines) + run.Stderr);
        var sample = JsonNode.Parse(telemetry.Lines[^1])!;
        Assert.InRange(sample["temperature"]!.GetValue<double>(), 150, 220);
        Assert.InRange(sample["lineSpeed"]!.GetValue<double>(), 0, 130);

        // The leaf's desired setpoint reaches the PLC's register.
        var desired = await host.IotCallsAsync([("data:update_thing_shadow", new { thingName = Plc, payload = new { state = new { desired = new { setpoint = 200.5 } } } })], Ct);
        Assert.Equal(200, desired[0]!["status"]!.GetValue<int>());
        Assert.True(await Eventually.TrueAsync(async () => await MbpollAsync(port) == "200.5", Timeout, Ct), "the setpoint did not reach the PLC: " + string.Join('|', run.Lines));
        run.Dispose();

        Assert.True(await simulate.WaitForExitAsync(TimeSpan.FromSeconds(60), Ct), simulate.Stderr);
        var summary = JsonNode.Parse(string.Join('\n', simulate.Lines))!;
        Assert.True(summary["plcRequests"]!.GetValue<long>() > 3, summary.ToJsonString());
    }

    [Fact]
    public async Task A_device_that_answers_with_exceptions_or_not_at_all_is_logged_once_and_the_others_go_on()
    {
        var (good, refusing, silent) = (TrellisHost.Unique("good"), TrellisHost.Unique("refusing"), TrellisHost.Unique("silent"));
        var (_, folder) = await ProvisionGatewayAsync("gwbad");

        // pymodbus answers the good device and, for an address it does not have, exception 2; a
        // listener that accepts and never answers stands for a device that hangs.
        var port = HttpReceiver.FreePort();
        using var device = ExternalTool.StartBackground("/usr/bin/python3", [Path.Combine(AppContext.BaseDirectory, "Scripts", "modbus_server.py"), port.ToString(CultureInfo.InvariantCulture)]);
        using var hanging = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        hanging.Start();
        var hangingPort = ((System.Net.IPEndPoint)hanging.LocalEndpoint).Port;
        var map = Path.Combine(folder, "modbus.json");
        await File.WriteAllTextAsync(map, $$"""
            {"devices": [
              {"thing": "{{good}}", "host": "127.0.0.1", "port": {{port}}, "intervalMs": 300, "points": [{"name": "temperature", "table": "holding", "address": 0, "type": "float32"}]},
              {"thing": "{{refusing}}", "host": "127.0.0.1", "port": {{port}}, "intervalMs": 300, "points": [{"name": "missing", "table": "holding", "address": 150}]},
              {"thing": "{{silent}}", "host": "127.0.0.1", "port": {{hangingPort}}, "intervalMs": 300, "timeoutMs": 300, "points": [{"name": "x", "table": "input", "address": 0}]}]}
            """, Ct);
        var watcher = TrellisHost.Unique("gww");
        using var telemetry = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(watcher), "-t", $"devices/{good}/telemetry", "-q", "1"]);
        await host.WaitSubscribedAsync(watcher, telemetry);
        using var run = ExternalTool.StartBackground(TrellisCli.FileName, [.. TrellisCli.Leading, "gateway", "--identity", folder, "--data", Path.Combine(folder, "data"), "--mqtt", "off", "--modbus", map]);

        Assert.True(await run.WaitForLineAsync(l => l.Contains($"Modbus device of {refusing}", StringComparison.Ordinal) && l.Contains("illegal data address", StringComparison.Ordinal), Timeout, Ct),
            string.Join('\n', run.Lines) + run.Stderr);
        Assert.True(await run.WaitForLineAsync(l => l.Contains($"Modbus device of {silent}", StringComparison.Ordinal) && l.Contains("did not answer", StringComparison.Ordinal), Timeout, Ct),
            string.Join('\n', run.Lines) + run.Stderr);

        // The good device's values keep arriving while the other two keep failing; each failure is
        // logged once, not at every poll (on a loaded machine a slow answer may add a time-out of its own).
        var before = telemetry.Lines.Count;
        Assert.True(await Eventually.TrueAsync(() => telemetry.Lines.Count >= before + 5, Timeout, Ct), "the good device stopped: " + string.Join('\n', run.Lines));
        Assert.Contains("\"temperature\":21.5", telemetry.Lines[^1], StringComparison.Ordinal);
        Assert.Single(run.Lines, l => l.Contains($"Modbus device of {refusing}", StringComparison.Ordinal) && l.Contains("illegal data address", StringComparison.Ordinal));
        Assert.Single(run.Lines, l => l.Contains($"Modbus device of {silent}", StringComparison.Ordinal) && l.Contains("did not answer", StringComparison.Ordinal));
    }

    /// <summary>A gateway thing with the gateway policy and its device folder (from `trellis provision`).</summary>
    private async Task<(string Thing, string Folder)> ProvisionGatewayAsync(string prefix)
    {
        var gateway = TrellisHost.Unique(prefix);
        var policy = TrellisHost.Unique("gwpol");
        var created = await host.IotCallsAsync([("create_policy", new { policyName = policy, policyDocument = GatewayPolicy })], Ct);
        Assert.Equal(200, created[0]!["status"]!.GetValue<int>());
        var folder = Path.Combine(host.DataDirectory, "gateways", gateway);
        var provision = await TrellisCli.RunAsync(host, ["provision", "--thing", gateway, "--out", folder, "--policy", policy], Ct);
        Assert.True(provision.ExitCode == 0, provision.Output);
        return (gateway, folder);
    }

    private async Task<bool> ConnectedAsync(string thing)
    {
        var data = await host.IotCallsAsync([("get_thing_connectivity_data", new { thingName = thing })], Ct);
        return data[0]!["body"]?["connected"]?.GetValue<bool>() == true;
    }

    [Fact]
    public async Task A_malformed_register_map_stops_the_gateway_at_start_naming_its_line()
    {
        var folder = Directory.CreateTempSubdirectory("gwmap").FullName;
        var map = Path.Combine(folder, "modbus.json");
        await File.WriteAllTextAsync(map, "{\"devices\": [{\"thing\": \"t\", \"host\": \"h\",\n\"points\": [{\"name\": \"a\", \"table\": \"holding\", \"address\": 0, \"type\": \"flaot32\"}]}]}", Ct);
        var result = await ExternalTool.RunAsync(TrellisCli.FileName, [.. TrellisCli.Leading, "gateway", "--identity", folder, "--data", Path.Combine(folder, "data"), "--mqtt", "off", "--modbus", map], Timeout, cancellationToken: Ct);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains($"{map}, line 2: type \"flaot32\"", result.Stderr, StringComparison.Ordinal);
        Directory.Delete(folder, recursive: true);
    }

    private static async Task<string> MbpollAsync(int port)
    {
        var result = await ExternalTool.RunAsync("mbpoll", ["-m", "tcp", "-a", "1", "-1", "-p", port.ToString(CultureInfo.InvariantCulture), "-r", "11", "-c", "1", "-t", "4:float", "-B", "127.0.0.1"], Timeout, cancellationToken: Ct);
        var line = result.Stdout.Split('\n').FirstOrDefault(l => l.StartsWith('['));
        return line is null ? string.Empty : line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
    }
}
