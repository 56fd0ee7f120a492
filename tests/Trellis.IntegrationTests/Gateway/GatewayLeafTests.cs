using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using Trellis.IntegrationTests.TestKit;
using Trellis.Security.Pki;

namespace Trellis.IntegrationTests.Gateway;

/// <summary>
/// Leaf devices behind <c>trellis gateway</c>, played by Debian's mosquitto clients on the gateway's
/// local listener, against a real Trellis server upstream: their telemetry goes up, their shadow
/// requests are answered, desired state and jobs come down, strangers are refused, and an upstream
/// that refuses the gateway's certificate costs nothing but time.
/// </summary>
[Collection(TrellisServerGroup.Name)]
public sealed class GatewayLeafTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private const string GatewayPolicy = """
        {"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
          {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":["arn:aws:iot:*:*:topic/devices/*","arn:aws:iot:*:*:topic/$aws/things/*",
            "arn:aws:iot:*:*:topic/$trellis/gateways/${iot:Connection.Thing.ThingName}/*"]},
          {"Effect":"Allow","Action":"iot:Subscribe","Resource":"arn:aws:iot:*:*:topicfilter/$aws/things/*"}]}
        """;

    private sealed record Gateway(string Identity, string Data, int Port, string Leaf, string Password, string OtherLeaf, string OtherPassword)
    {
        public List<string> Leaf1(string? password = null) =>
            ["-h", "127.0.0.1", "-p", Port.ToString(CultureInfo.InvariantCulture), "-i", Leaf, "-u", Leaf, "-P", password ?? Password];
    }

    [Fact]
    public async Task A_leaf_sends_telemetry_up_and_gets_its_shadow_and_jobs_down_through_the_gateway()
    {
        var gateway = await SetUpAsync();
        using var run = StartGateway(gateway);
        Assert.True(await run.WaitForLineAsync(l => l.Contains("Connected upstream", StringComparison.Ordinal), Timeout, Ct), string.Join('\n', run.Lines) + run.Stderr);

        // Telemetry: mosquitto_pub on the gateway, seen upstream.
        var watcher = TrellisHost.Unique("gwwatch");
        using var upstream = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(watcher), "-t", $"devices/{gateway.Leaf}/#", "-q", "1", "-v"]);
        await host.WaitSubscribedAsync(watcher, upstream);
        var published = await ExternalTool.RunAsync("mosquitto_pub", [.. gateway.Leaf1(), "-t", $"devices/{gateway.Leaf}/telemetry", "-m", """{"temperature":20.5}""", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(published.ExitCode == 0, published.Output);
        Assert.True(await upstream.WaitForLineAsync(l => l == $$"""devices/{{gateway.Leaf}}/telemetry {"temperature":20.5}""", Timeout, Ct), string.Join('|', upstream.Lines));

        // Shadow request and answer: mosquitto_rr through the gateway.
        var answer = await ExternalTool.RunAsync("mosquitto_rr", [.. gateway.Leaf1(), "-t", $"$aws/things/{gateway.Leaf}/shadow/update", "-e", $"$aws/things/{gateway.Leaf}/shadow/update/accepted", "-m", """{"state":{"reported":{"mode":"eco"}}}""", "-q", "1", "-W", "20"], Timeout, cancellationToken: Ct);
        Assert.True(answer.ExitCode == 0, answer.Output);
        Assert.Contains("\"mode\":\"eco\"", answer.Stdout, StringComparison.Ordinal);

        // Desired state and a job, set upstream with boto3, reach a leaf subscribed on the gateway.
        using var down = ExternalTool.StartBackground("mosquitto_sub", [.. gateway.Leaf1(), "-c", "-t", $"$aws/things/{gateway.Leaf}/shadow/update/delta", "-t", $"$aws/things/{gateway.Leaf}/jobs/notify-next", "-q", "1", "-v"]);
        var job = TrellisHost.Unique("gwjob");
        Assert.True(await Eventually.TrueAsync(async () =>
        {
            var set = await host.IotCallsAsync([("data:update_thing_shadow", new { thingName = gateway.Leaf, payload = new { state = new { desired = new { mode = "boost" + DateTime.UtcNow.Ticks } } } })], Ct);
            return set[0]!["status"]!.GetValue<int>() == 200 && await down.WaitForLineAsync(l => l.Contains("/shadow/update/delta", StringComparison.Ordinal), TimeSpan.FromSeconds(2), Ct);
        }, Timeout, Ct), "no delta reached the leaf: " + string.Join('|', down.Lines) + down.Stderr);
        var created = await host.IotCallsAsync([("create_job", new { jobId = job, targets = new[] { $"arn:aws:iot:us-east-1:000000000000:thing/{gateway.Leaf}" }, document = """{"operation":"reboot"}""" })], Ct);
        Assert.Equal(200, created[0]!["status"]!.GetValue<int>());
        Assert.True(await down.WaitForLineAsync(l => l.Contains("/jobs/notify-next", StringComparison.Ordinal) && l.Contains(job, StringComparison.Ordinal), Timeout, Ct), "the job did not reach the leaf: " + string.Join('|', down.Lines));

        // Strangers: a wrong password, and a leaf publishing on another leaf's topic.
        var wrong = await ExternalTool.RunAsync("mosquitto_pub", [.. gateway.Leaf1("not-the-password"), "-t", $"devices/{gateway.Leaf}/telemetry", "-m", "x", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.NotEqual(0, wrong.ExitCode);
        Assert.Contains("bad user name or password", wrong.Stderr, StringComparison.OrdinalIgnoreCase);
        var foreign = await ExternalTool.RunAsync("mosquitto_pub", [.. gateway.Leaf1(), "-V", "mqttv5", "-t", $"devices/{gateway.OtherLeaf}/telemetry", "-m", "x", "-q", "1"], Timeout, cancellationToken: Ct);
        // MQTT 5: a PUBACK with 0x87, which mosquitto_pub reports (and exits 0: it was answered, not hung).
        Assert.True(foreign.ExitCode == 0, foreign.Output);
        Assert.Contains("not authorized", foreign.Stderr, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Leaves_become_things_upstream_and_are_online_exactly_while_connected_through_a_connected_gateway()
    {
        // The leaf things do not exist upstream: the gateway registers them. A third "leaf" is a
        // device with its own certificate, which no gateway may take over.
        var direct = TrellisHost.Unique("direct");
        await host.ProvisionAsync(direct, TrellisHost.Unique("directpol"), GatewayPolicy, Ct);
        var gateway = await SetUpAsync(createLeaves: false, extraLeaves: [direct]);
        var gatewayThing = Path.GetFileName(Path.GetDirectoryName(gateway.Identity))!;
        using (var run = StartGateway(gateway))
        {
            Assert.True(await run.WaitForLineAsync(l => l.Contains("2 of 3 leaves registered upstream", StringComparison.Ordinal), Timeout, Ct), string.Join('\n', run.Lines) + run.Stderr);
            Assert.Contains(run.Lines, l => l.Contains($"Upstream refused leaf {direct}", StringComparison.Ordinal) && l.Contains("principals of its own", StringComparison.Ordinal));
            var described = await host.IotCallsAsync([("describe_thing", new { thingName = gateway.Leaf }), ("describe_thing", new { thingName = direct })], Ct);
            Assert.Equal(200, described[0]!["status"]!.GetValue<int>());
            Assert.Equal(gatewayThing, described[0]!["body"]!["attributes"]!["gateway"]!.GetValue<string>());
            Assert.Null(described[1]!["body"]!["attributes"]!["gateway"]);

            // Online upstream while its mosquitto_sub is connected to the gateway; offline once it leaves.
            Assert.False(await ConnectedAsync(gateway.Leaf));
            using (var leaf = ExternalTool.StartBackground("mosquitto_sub", [.. gateway.Leaf1(), "-t", $"devices/{gateway.Leaf}/commands", "-q", "1"]))
            {
                Assert.True(await Eventually.TrueAsync(() => ConnectedAsync(gateway.Leaf), Timeout, Ct), "the leaf never showed online upstream: " + string.Join('\n', run.Lines) + leaf.Stderr);
            }

            Assert.True(await Eventually.TrueAsync(async () => !await ConnectedAsync(gateway.Leaf), Timeout, Ct), "the leaf stayed online upstream after it disconnected");

            // Connected again, then the gateway itself goes (kill -9): the server takes its leaves offline.
            using var again = ExternalTool.StartBackground("mosquitto_sub", [.. gateway.Leaf1(), "-t", $"devices/{gateway.Leaf}/commands", "-q", "1"]);
            Assert.True(await Eventually.TrueAsync(() => ConnectedAsync(gateway.Leaf), Timeout, Ct), "the leaf did not show online again");
            run.Dispose(); // SIGKILL
            Assert.True(await Eventually.TrueAsync(async () => !await ConnectedAsync(gateway.Leaf), TimeSpan.FromSeconds(90), Ct), "the leaf stayed online after its gateway died");
        }

        // Another gateway may not claim the first one's leaf.
        var thief = await SetUpAsync(createLeaves: false, leafNames: [gateway.Leaf, TrellisHost.Unique("leaf")]);
        using var thiefRun = StartGateway(thief);
        Assert.True(await thiefRun.WaitForLineAsync(l => l.Contains($"Upstream refused leaf {gateway.Leaf}", StringComparison.Ordinal) && l.Contains("is a leaf of gateway " + gatewayThing, StringComparison.Ordinal), Timeout, Ct),
            string.Join('\n', thiefRun.Lines) + thiefRun.Stderr);
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_gateway_with_only_a_claim_provisions_itself_on_first_start_and_keeps_that_identity()
    {
        var template = TrellisHost.Unique("gwtpl");
        var gatewayPolicy = TrellisHost.Unique("gwlpol");
        var claimPolicy = TrellisHost.Unique("gwclaimpol");
        var serial = TrellisHost.Unique("sn");
        var claimTopics = $"\"arn:aws:iot:*:*:topic/$aws/certificates/create-from-csr/*\",\"arn:aws:iot:*:*:topic/$aws/provisioning-templates/{template}/provision/*\"";
        var claimJson = $$"""
            {"Version":"2012-10-17","Statement":[
              {"Effect":"Allow","Action":"iot:Connect","Resource":"*"},
              {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":[{{claimTopics}}]},
              {"Effect":"Allow","Action":"iot:Subscribe","Resource":[{{claimTopics.Replace(":topic/", ":topicfilter/", StringComparison.Ordinal)}}]}]}
            """;
        var body = """
            {"Parameters": {"SerialNumber": {"Type": "String"}, "AWS::IoT::Certificate::Id": {"Type": "String"}},
             "Resources": {
              "thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Fn::Join": ["", ["gw-", {"Ref": "SerialNumber"}]]}}},
              "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "Active"}},
              "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "GATEWAY_POLICY"}}}}
            """.Replace("GATEWAY_POLICY", gatewayPolicy, StringComparison.Ordinal);
        var setup = await host.IotCallsAsync([
            ("create_policy", new { policyName = gatewayPolicy, policyDocument = GatewayPolicy }),
            ("create_policy", new { policyName = claimPolicy, policyDocument = claimJson }),
            ("create_provisioning_template", new { templateName = template, templateBody = body, enabled = true, provisioningRoleArn = "arn:aws:iam::000000000000:role/p" }),
        ], Ct);
        Assert.All(setup, r => Assert.True(r!["status"]!.GetValue<int>() == 200, r.ToJsonString()));
        var folder = Path.Combine(host.DataDirectory, "gateways", TrellisHost.Unique("gwclaim"));
        var claimThing = TrellisHost.Unique("claim");
        var provision = await TrellisCli.RunAsync(host, ["provision", "--thing", claimThing, "--out", Path.Combine(folder, "claim"), "--policy", claimPolicy], Ct);
        Assert.True(provision.ExitCode == 0, provision.Output);
        var data = Path.Combine(folder, "data");
        var leaf = TrellisHost.Unique("leaf");
        var added = await ExternalTool.RunAsync(TrellisCli.FileName, [.. TrellisCli.Leading, "gateway", "add-leaf", "--data", data, "--thing", leaf], Timeout, cancellationToken: Ct);
        Assert.True(added.ExitCode == 0, added.Output);
        var identity = Path.Combine(folder, "identity");
        var port = HttpReceiver.FreePort().ToString(CultureInfo.InvariantCulture);
        List<string> run = [.. TrellisCli.Leading, "gateway", "--identity", identity, "--data", data, "--mqtt", $"127.0.0.1:{port}"];

        // A template that does not exist: a clear refusal, exit 2, nothing written.
        var wrong = await ExternalTool.RunAsync(TrellisCli.FileName, [.. run, "--claim", Path.Combine(folder, "claim"), "--template", "no-such-template", "--serial", serial], Timeout, cancellationToken: Ct);
        Assert.True(wrong.ExitCode == 2, wrong.Output);
        Assert.Contains("template no-such-template was refused", wrong.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(identity, "device.json")));

        using (var first = ExternalTool.StartBackground(TrellisCli.FileName, [.. run, "--claim", Path.Combine(folder, "claim"), "--template", template, "--serial", serial]))
        {
            Assert.True(await first.WaitForLineAsync(l => l.Contains("1 of 1 leaves registered upstream", StringComparison.Ordinal), Timeout, Ct), string.Join('\n', first.Lines) + first.Stderr);
            Assert.Contains(first.Lines, l => l.Contains($"Provisioned by claim as thing gw-{serial}", StringComparison.Ordinal));
        }

        var written = System.Text.Json.Nodes.JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(identity, "device.json"), Ct))!;
        Assert.Equal($"gw-{serial}", written["thingName"]!.GetValue<string>());
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(identity, $"gw-{serial}.private.key")));
        var thing = await host.IotCallsAsync([("describe_thing", new { thingName = $"gw-{serial}" }), ("describe_thing", new { thingName = leaf }), ("list_thing_principals", new { thingName = $"gw-{serial}" })], Ct);
        Assert.All(thing, r => Assert.True(r!["status"]!.GetValue<int>() == 200, r.ToJsonString()));
        Assert.Equal($"gw-{serial}", thing[1]!["body"]!["attributes"]!["gateway"]!.GetValue<string>());
        Assert.Single(thing[2]!["body"]!["principals"]!.AsArray());

        // The next start uses the identity it wrote (the claim may be gone) and provisions nothing.
        Directory.Delete(Path.Combine(folder, "claim"), recursive: true);
        using var second = ExternalTool.StartBackground(TrellisCli.FileName, [.. run, "--claim", Path.Combine(folder, "claim"), "--template", template, "--serial", serial]);
        Assert.True(await second.WaitForLineAsync(l => l.Contains("Connected upstream", StringComparison.Ordinal), Timeout, Ct), string.Join('\n', second.Lines) + second.Stderr);
        Assert.DoesNotContain(second.Lines, l => l.Contains("Provisioned by claim", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_constrained_leaf_posts_over_coap_to_the_gateway_and_its_message_goes_upstream()
    {
        var gateway = await SetUpAsync();
        var coapPort = HttpReceiver.FreePort();
        var watcher = TrellisHost.Unique("gwwatch");
        using var upstream = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(watcher), "-t", $"devices/{gateway.Leaf}/#", "-q", "1", "-v"]);
        await host.WaitSubscribedAsync(watcher, upstream);
        using var run = StartGateway(gateway, "--coap", $"127.0.0.1:{coapPort}");
        Assert.True(await run.WaitForLineAsync(l => l.Contains("leaves registered upstream", StringComparison.Ordinal), Timeout, Ct), string.Join('\n', run.Lines) + run.Stderr);
        Assert.Contains(run.Lines, l => l.Contains($"CoAP port {coapPort}", StringComparison.Ordinal));
        string Uri(string path, string? token = null) => $"coap://127.0.0.1:{coapPort}/{path}?thing={gateway.Leaf}&token={token ?? gateway.Password}";
        Task<ExternalTool.Result> CoapAsync(params string[] args) => ExternalTool.RunAsync("coap-client-notls", ["-B", "5", .. args], Timeout, cancellationToken: Ct);

        // libcoap's client POSTs as the leaf: 2.04 once queued, then seen upstream, and the leaf is online there.
        var posted = await CoapAsync("-m", "post", "-e", """{"pm25":7}""", Uri($"topics/devices/{gateway.Leaf}/telemetry"));
        Assert.True(posted.ExitCode == 0, posted.Output);
        Assert.DoesNotContain("4.", posted.Output, StringComparison.Ordinal);
        Assert.True(await upstream.WaitForLineAsync(l => l == $$"""devices/{{gateway.Leaf}}/telemetry {"pm25":7}""", Timeout, Ct), string.Join('|', upstream.Lines) + string.Join('\n', run.Lines));
        Assert.True(await Eventually.TrueAsync(() => ConnectedAsync(gateway.Leaf), Timeout, Ct), "the CoAP leaf is not online upstream");

        // Refusals: a wrong password (4.01), another leaf's topic (4.03), a wildcard (4.00), an unknown resource (4.04).
        Assert.Contains("4.01", (await CoapAsync("-m", "post", "-e", "x", Uri($"topics/devices/{gateway.Leaf}/telemetry", "wrong"))).Output, StringComparison.Ordinal);
        Assert.Contains("4.03", (await CoapAsync("-m", "post", "-e", "x", Uri($"topics/devices/{gateway.OtherLeaf}/telemetry"))).Output, StringComparison.Ordinal);
        Assert.Contains("4.00", (await CoapAsync("-m", "post", "-e", "x", Uri($"topics/devices/{gateway.Leaf}/%2B"))).Output, StringComparison.Ordinal);
        Assert.Contains("4.04", (await CoapAsync(Uri("nothing-here"))).Output, StringComparison.Ordinal);
        Assert.DoesNotContain(upstream.Lines, l => l.EndsWith(" x", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_full_queue_drops_the_oldest_counts_them_and_forwards_the_newest_in_order()
    {
        // Upstream refuses the gateway's certificate, so nothing drains while the leaf fills a 1 MB queue.
        var gateway = await SetUpAsync();
        var certificateId = CertificateAuthority.CertificateId(X509CertificateLoader.LoadCertificateFromFile(Directory.GetFiles(gateway.Identity, "*.cert.pem").Single()));
        var inactive = await host.IotCallsAsync([("update_certificate", new { certificateId, newStatus = "INACTIVE" })], Ct);
        Assert.Equal(200, inactive[0]!["status"]!.GetValue<int>());
        using var run = StartGateway(gateway, "--queue-max-mb", "1");
        Assert.True(await run.WaitForLineAsync(l => l.Contains("is not reachable", StringComparison.Ordinal), Timeout, Ct), string.Join('\n', run.Lines) + run.Stderr);

        // 40 messages of 64 KB, numbered: every one is acknowledged (the newest data wins).
        var payload = Path.Combine(gateway.Data, "..", "big.txt");
        var script = $"for i in $(seq 10 49); do printf $i > {payload}; head -c 65000 /dev/zero | tr '\\0' x >> {payload}; "
            + $"mosquitto_pub {string.Join(' ', gateway.Leaf1())} -t devices/{gateway.Leaf}/bulk -q 1 -f {payload} || exit 1; done";
        var published = await ExternalTool.RunAsync("sh", ["-c", script], TimeSpan.FromSeconds(90), cancellationToken: Ct);
        Assert.True(published.ExitCode == 0, published.Output);
        Assert.True(await run.WaitForLineAsync(l => l.Contains("oldest message(s) dropped", StringComparison.Ordinal), Timeout, Ct), string.Join('\n', run.Lines));

        var watcher = TrellisHost.Unique("gwwatch");
        using var upstream = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(watcher), "-t", $"devices/{gateway.Leaf}/bulk", "-q", "1"]);
        await host.WaitSubscribedAsync(watcher, upstream);
        var active = await host.IotCallsAsync([("update_certificate", new { certificateId, newStatus = "ACTIVE" })], Ct);
        Assert.Equal(200, active[0]!["status"]!.GetValue<int>());
        Assert.True(await Eventually.TrueAsync(() => upstream.Lines.Any(l => l.StartsWith("49", StringComparison.Ordinal)), TimeSpan.FromSeconds(45), Ct), "the newest message was not forwarded: " + string.Join('\n', run.Lines));
        var numbers = upstream.Lines.Select(l => int.Parse(l[..2], CultureInfo.InvariantCulture)).ToList();
        Assert.InRange(numbers.Count, 5, 20); // about 1 MB of 64 KB messages
        Assert.Equal(numbers.Order(), numbers); // in order
        Assert.Equal(Enumerable.Range(50 - numbers.Count, numbers.Count), numbers); // the newest, none missing among them
    }

    private async Task<bool> ConnectedAsync(string thing)
    {
        var data = await host.IotCallsAsync([("get_thing_connectivity_data", new { thingName = thing })], Ct);
        Assert.True(data[0]!["status"]!.GetValue<int>() == 200, data[0]!.ToJsonString());
        return data[0]!["body"]!["connected"]?.GetValue<bool>() == true;
    }

    [Fact]
    public async Task While_upstream_refuses_the_gateway_certificate_leaves_are_acknowledged_and_their_messages_wait()
    {
        var gateway = await SetUpAsync();
        var certificateId = CertificateAuthority.CertificateId(X509CertificateLoader.LoadCertificateFromFile(Directory.GetFiles(gateway.Identity, "*.cert.pem").Single()));
        var inactive = await host.IotCallsAsync([("update_certificate", new { certificateId, newStatus = "INACTIVE" })], Ct);
        Assert.Equal(200, inactive[0]!["status"]!.GetValue<int>());
        using var run = StartGateway(gateway);
        Assert.True(await run.WaitForLineAsync(l => l.Contains("is not reachable", StringComparison.Ordinal), Timeout, Ct), string.Join('\n', run.Lines) + run.Stderr);
        Assert.Contains(run.Lines, l => l.Contains("check its certificate's status", StringComparison.Ordinal) || l.Contains("TLS handshake failed", StringComparison.Ordinal));

        var published = await ExternalTool.RunAsync("mosquitto_pub", [.. gateway.Leaf1(), "-t", $"devices/{gateway.Leaf}/telemetry", "-m", """{"queued":true}""", "-q", "1"], Timeout, cancellationToken: Ct);
        Assert.True(published.ExitCode == 0, published.Output);

        var watcher = TrellisHost.Unique("gwwatch");
        using var upstream = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(watcher), "-t", $"devices/{gateway.Leaf}/#", "-q", "1", "-v"]);
        await host.WaitSubscribedAsync(watcher, upstream);
        var active = await host.IotCallsAsync([("update_certificate", new { certificateId, newStatus = "ACTIVE" })], Ct);
        Assert.Equal(200, active[0]!["status"]!.GetValue<int>());
        Assert.True(await upstream.WaitForLineAsync(l => l.Contains("\"queued\":true", StringComparison.Ordinal), TimeSpan.FromSeconds(45), Ct), "the queued message was not forwarded: " + string.Join('\n', run.Lines));
    }

    [Fact]
    public async Task A_local_rule_sends_window_averages_upstream_instead_of_raw_samples()
    {
        var gateway = await SetUpAsync();
        var rules = Path.Combine(gateway.Data, "..", "rules.json");
        await File.WriteAllTextAsync(rules, """
            {"rules": [{"name": "one-second", "sql": "SELECT temperature FROM 'devices/+/telemetry' WHERE temperature > -50",
                        "topic": "devices/${topic(2)}/summary", "windowSeconds": 1, "functions": ["avg", "max"]}]}
            """, Ct);
        var watcher = TrellisHost.Unique("gwwatch");
        using var upstream = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(watcher), "-t", $"devices/{gateway.Leaf}/#", "-q", "1", "-v"]);
        await host.WaitSubscribedAsync(watcher, upstream);
        using var run = StartGateway(gateway, "--rules", rules);
        Assert.True(await run.WaitForLineAsync(l => l.Contains("1 local rule(s)", StringComparison.Ordinal), Timeout, Ct), string.Join('\n', run.Lines) + run.Stderr);

        // 40 samples, 0…39, and one the rule filters out: averages arrive, raw samples do not.
        var samples = string.Join('\n', Enumerable.Range(0, 40).Select(i => $$"""{"temperature":{{i}}}""").Append("""{"temperature":-99}""")) + "\n";
        var input = Path.Combine(gateway.Data, "..", "samples.txt");
        await File.WriteAllTextAsync(input, samples, Ct);
        var published = await ExternalTool.RunAsync("sh", ["-c", $"mosquitto_pub {string.Join(' ', gateway.Leaf1())} -t devices/{gateway.Leaf}/telemetry -q 1 -l < {input}"], Timeout, cancellationToken: Ct);
        Assert.True(published.ExitCode == 0, published.Output);
        List<System.Text.Json.Nodes.JsonNode> summaries = [];
        Assert.True(await Eventually.TrueAsync(() =>
        {
            summaries = [.. upstream.Lines.Where(l => l.StartsWith($"devices/{gateway.Leaf}/summary ", StringComparison.Ordinal)).Select(l => System.Text.Json.Nodes.JsonNode.Parse(l[(l.IndexOf(' ', StringComparison.Ordinal) + 1)..])!)];
            return summaries.Sum(m => m["count"]!.GetValue<long>()) >= 40;
        }, Timeout, Ct), "no window summaries: " + string.Join('|', upstream.Lines) + string.Join('\n', run.Lines));
        Assert.Equal(40, summaries.Sum(m => m["count"]!.GetValue<long>()));
        Assert.Equal(19.5, summaries.Sum(m => m["temperature_avg"]!.GetValue<double>() * m["count"]!.GetValue<long>()) / 40, 6);
        Assert.Equal(39, summaries.Max(m => m["temperature_max"]!.GetValue<double>()));
        Assert.DoesNotContain(upstream.Lines, l => l.StartsWith($"devices/{gateway.Leaf}/telemetry ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_rules_file_with_a_syntax_error_stops_the_gateway_at_start_naming_the_rule()
    {
        var gateway = await SetUpAsync();
        var rules = Path.Combine(gateway.Data, "..", "bad-rules.json");
        await File.WriteAllTextAsync(rules, """{"rules": [{"name": "broken", "sql": "SELECT temperature FROM"}]}""", Ct);
        var result = await ExternalTool.RunAsync(TrellisCli.FileName, [.. TrellisCli.Leading, "gateway", "--identity", gateway.Identity, "--data", gateway.Data, "--mqtt", $"127.0.0.1:{gateway.Port}", "--rules", rules], Timeout, cancellationToken: Ct);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("rule broken:", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("line 1", result.Stderr, StringComparison.Ordinal);
    }

    private static ExternalTool.Background StartGateway(Gateway gateway, params string[] extra) =>
        ExternalTool.StartBackground(TrellisCli.FileName, [.. TrellisCli.Leading, "gateway", "--identity", gateway.Identity, "--data", gateway.Data, "--mqtt", $"127.0.0.1:{gateway.Port}", .. extra]);

    private async Task<Gateway> SetUpAsync(bool createLeaves = true, string[]? extraLeaves = null, string[]? leafNames = null)
    {
        var name = TrellisHost.Unique("gwl");
        var leaf = leafNames?[0] ?? TrellisHost.Unique("leaf");
        var other = leafNames?[1] ?? TrellisHost.Unique("leaf");
        var policy = TrellisHost.Unique("gwlpol");
        List<(string, object)> calls = [("create_policy", new { policyName = policy, policyDocument = GatewayPolicy })];
        if (createLeaves)
        {
            calls.Add(("create_thing", new { thingName = leaf }));
            calls.Add(("create_thing", new { thingName = other }));
        }

        var setup = await host.IotCallsAsync([.. calls], Ct);
        Assert.All(setup, r => Assert.Equal(200, r!["status"]!.GetValue<int>()));
        var folder = Path.Combine(host.DataDirectory, "gateways", name);
        var provision = await TrellisCli.RunAsync(host, ["provision", "--thing", name, "--out", Path.Combine(folder, "identity"), "--policy", policy], Ct);
        Assert.True(provision.ExitCode == 0, provision.Output);
        var data = Path.Combine(folder, "data");
        var passwords = new List<string>();
        foreach (var thing in new[] { leaf, other }.Concat(extraLeaves ?? []))
        {
            var added = await ExternalTool.RunAsync(TrellisCli.FileName, [.. TrellisCli.Leading, "gateway", "add-leaf", "--data", data, "--thing", thing], Timeout, cancellationToken: Ct);
            Assert.True(added.ExitCode == 0, added.Output);
            passwords.Add(added.Stdout.Trim().Split('\n')[^1]);
        }

        return new Gateway(Path.Combine(folder, "identity"), data, HttpReceiver.FreePort(), leaf, passwords[0], other, passwords[1]);
    }
}
