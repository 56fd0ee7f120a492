using System.CommandLine;
using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Spectre.Console;
using Trellis.Device;
using Trellis.Simulator;

namespace Trellis.Cli;

/// <summary>
/// <c>trellis simulate --profile smart-city|industrial|healthcare --devices N --seconds S</c>
/// (docs/simulator.md): sets up the profile's fleet provisioning once (device and claim policies, a
/// thing group, a provisioning template and a claim certificate, through the API), provisions each
/// device by claim on its first start (identities kept in the state folder), and runs the fleet
/// with a live view and a summary at the end.
/// </summary>
internal static class SimulateCommand
{
    private const string DevicePolicy = """
        {"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
          {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":["arn:aws:iot:*:*:topic/devices/${iot:Connection.Thing.ThingName}/*","arn:aws:iot:*:*:topic/$aws/things/${iot:Connection.Thing.ThingName}/*"]},
          {"Effect":"Allow","Action":"iot:Subscribe","Resource":["arn:aws:iot:*:*:topicfilter/devices/${iot:Connection.Thing.ThingName}/*","arn:aws:iot:*:*:topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/*"]}]}
        """;

    private const string ClaimPolicy = """
        {"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Action":"iot:Connect","Resource":"*"},
          {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":["arn:aws:iot:*:*:topic/$aws/certificates/create-from-csr/*","arn:aws:iot:*:*:topic/$aws/provisioning-templates/trellis-sim-*/provision/*"]},
          {"Effect":"Allow","Action":"iot:Subscribe","Resource":["arn:aws:iot:*:*:topicfilter/$aws/certificates/create-from-csr/*","arn:aws:iot:*:*:topicfilter/$aws/provisioning-templates/trellis-sim-*/provision/*"]}]}
        """;

    public static Command Create()
    {
        var profile = new Option<string>("--profile") { Description = "smart-city, industrial or healthcare", Required = true };
        profile.AcceptOnlyFromAmong(Profiles.Names);
        var devices = new Option<int>("--devices") { Description = "How many devices", DefaultValueFactory = _ => 200 };
        var seconds = new Option<int>("--seconds") { Description = "How long to run (0: until Ctrl-C)", DefaultValueFactory = _ => 60 };
        var interval = new Option<int?>("--interval-ms") { Description = "Sampling interval of every device (default: the profile's, per kind of device; a shadow's desired samplingIntervalMs overrides it)" };
        var state = new Option<string?>("--state") { Description = "Folder for the fleet's claim and device identities (default ./simulate-PROFILE)" };
        var plc = new Option<string?>("--plc") { Description = "industrial: also play the line's PLC on Modbus TCP at HOST:PORT, for `trellis gateway --modbus STATE/plc-modbus.json` to poll" };
        var coapDevices = new Option<int>("--coap-devices") { Description = "How many of the devices talk CoAP (plain UDP, a device token each) instead of MQTT", DefaultValueFactory = _ => 0 };
        var coap = new Option<string?>("--coap") { Description = "The server's CoAP endpoint HOST:PORT for --coap-devices (default: the MQTT endpoint's host, port 5683)" };
        var command = new Command("simulate", "Run a simulated fleet (smart city, industrial, healthcare), provisioned by claim, against a Trellis server.") { profile, devices, seconds, interval, state, plc, coapDevices, coap };
        command.SetAction((parse, ct) => ManageCommands.RunStepsAsync(parse, api => RunAsync(
            api, parse.GetValue(profile)!, parse.GetValue(devices), parse.GetValue(seconds), parse.GetValue(interval),
            Path.GetFullPath(parse.GetValue(state) ?? "simulate-" + parse.GetValue(profile)), parse.GetValue(ManageCommands.DataOption)!,
            new Extras(parse.GetValue(plc), parse.GetValue(coapDevices), parse.GetValue(coap)), ct)));
        return command;
    }

    /// <summary>The options beyond the fleet itself: the PLC, and how many devices use CoAP where.</summary>
    private sealed record Extras(string? Plc, int CoapDevices, string? Coap);

    private static async Task<ApiAnswer> RunAsync(ApiClient api, string profile, int count, int seconds, int? intervalMs, string stateDirectory, string dataDirectory, Extras extras, CancellationToken ct)
    {
        if (count is < 1 or > 100_000 || seconds < 0 || intervalMs is < 100 || extras.CoapDevices < 0 || extras.CoapDevices > count)
        {
            return new ApiAnswer(400, null, "InvalidRequestException", "--devices must be 1…100000, --seconds 0 or more, --interval-ms at least 100, --coap-devices 0…--devices");
        }

        var plcAt = extras.Plc;

        System.Net.IPEndPoint? plcEndpoint = null;
        if (plcAt is not null && (profile != "industrial" || !System.Net.IPEndPoint.TryParse(plcAt, out plcEndpoint)))
        {
            return new ApiAnswer(400, null, "InvalidRequestException", $"--plc {plcAt}: give the industrial profile and an IP HOST:PORT, such as 127.0.0.1:1502");
        }

        Directory.CreateDirectory(stateDirectory);
        var template = "trellis-sim-" + profile;
        var claimFailure = await SetUpAsync(api, profile, template, stateDirectory, dataDirectory, ct);
        if (claimFailure is not null)
        {
            return claimFailure;
        }

        var endpoint = await api.SendAsync(HttpMethod.Get, "/endpoint", "endpointType=iot%3AData-ATS", null, ct);
        var address = endpoint.Body?["endpointAddress"]?.GetValue<string>() ?? "localhost:8883";
        var colon = address.LastIndexOf(':');
        var claim = DeviceOptions.FromPemFiles(colon > 0 ? address[..colon] : address, colon > 0 ? int.Parse(address[(colon + 1)..], CultureInfo.InvariantCulture) : 8883,
            "claim", Path.Combine(stateDirectory, "claim.cert.pem"), Path.Combine(stateDirectory, "claim.private.key"), Path.Combine(stateDirectory, "ca.pem"));
        claim = new DeviceOptions
        {
            Host = claim.Host,
            Port = claim.Port,
            ThingName = claim.ThingName,
            ClientId = "trellis-sim-claim-" + Guid.NewGuid().ToString("N")[..8],
            Certificate = claim.Certificate,
            CaCertificate = claim.CaCertificate,
        };

        var fleet = new List<(SimulatedDevice, DeviceOptions)>(count);
        var coapTokens = new Dictionary<string, string>(StringComparer.Ordinal);
        await using (var provisioner = new ClaimProvisioner(claim, template, stateDirectory))
        {
            var started = DateTime.UtcNow;
            for (var i = 0; i < count; i++)
            {
                var identity = await provisioner.IdentityAsync(i.ToString("D5", CultureInfo.InvariantCulture), ct);
                fleet.Add((Profiles.Create(profile, i, identity.ThingName, intervalMs), identity));
                if ((i + 1) % 500 == 0)
                {
                    await Console.Error.WriteLineAsync($"trellis simulate: {i + 1} of {count} devices have their identity ({provisioner.Provisioned} provisioned by claim now)");
                }
            }

            if (extras.CoapDevices > 0)
            {
                var failed = await CoapTokensAsync(api, fleet.Skip(count - extras.CoapDevices).Select(d => d.Item1.Thing), stateDirectory, coapTokens, ct);
                if (failed is not null)
                {
                    return failed;
                }
            }

            await Console.Error.WriteLineAsync($"trellis simulate: {count} devices ready ({provisioner.Provisioned} provisioned by claim in {(DateTime.UtcNow - started).TotalSeconds:F1} s, {count - provisioner.Provisioned} from {stateDirectory}); running for {(seconds == 0 ? "ever (Ctrl-C stops)" : seconds + " s")}.");
        }

        // Firmware jobs run through the device SDK's OTA agent, which verifies images against the
        // server's code-signing certificate (a team that signs elsewhere signs with its own; the
        // simulated devices trust the server's).
        OtaSetup? ota = null;
        var signer = await api.SendAsync(HttpMethod.Get, "/api/code-signing/certificate", null, null, ct);
        if (signer.Body?["certificatePem"]?.GetValue<string>() is { } signerPem)
        {
            ota = new OtaSetup(System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(signerPem), Path.Combine(stateDirectory, "ota"));
        }
        else
        {
            await Console.Error.WriteLineAsync("trellis simulate: the server's code-signing certificate could not be read, so firmware jobs are run as plain jobs: " + signer.Body?.ToJsonString());
        }

        using var signerCertificate = ota?.Signer;
        await using var line = plcEndpoint is null ? null : new SimulatedPlc(plcEndpoint);
        if (line is not null)
        {
            try
            {
                line.Start();
            }
            catch (System.Net.Sockets.SocketException e)
            {
                return new ApiAnswer(400, null, "InvalidRequestException", $"--plc {plcAt}: the port cannot be used ({e.Message}); give another HOST:PORT");
            }

            var mapFile = Path.Combine(stateDirectory, "plc-modbus.json");
            var host = plcEndpoint!.Address.Equals(System.Net.IPAddress.Any) ? "127.0.0.1" : plcEndpoint.Address.ToString();
            await File.WriteAllTextAsync(mapFile, line.RegisterMap(host).ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n", ct);
            await Console.Error.WriteLineAsync($"trellis simulate: the line's PLC answers Modbus TCP on {line.LocalEndPoint} (unit 1); poll it with `trellis gateway --modbus {mapFile}` (leaf {SimulatedPlc.Thing})");
        }

        CoapSetup? coapSetup = null;
        if (extras.CoapDevices > 0)
        {
            var coapAt = extras.Coap ?? (claim.Host is "localhost" ? "127.0.0.1" : claim.Host) + ":5683";
            if (!System.Net.IPEndPoint.TryParse(coapAt, out var coapEndpoint))
            {
                var addresses = await System.Net.Dns.GetHostAddressesAsync(coapAt[..coapAt.LastIndexOf(':')], ct);
                coapEndpoint = new System.Net.IPEndPoint(addresses[0], int.Parse(coapAt[(coapAt.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture));
            }

            coapSetup = new CoapSetup(coapEndpoint, coapTokens);
            await Console.Error.WriteLineAsync($"trellis simulate: {extras.CoapDevices} of the devices talk CoAP to {coapEndpoint}, the others MQTT");
        }

        var simulator = new FleetSimulator(fleet, ota, coapSetup);
        using var run = CancellationTokenSource.CreateLinkedTokenSource(ct);
        if (seconds > 0)
        {
            run.CancelAfter(TimeSpan.FromSeconds(seconds));
        }

        var begin = DateTime.UtcNow;
        var running = simulator.RunAsync(run.Token);
        await ShowAsync(simulator.Stats, running, count);
        var elapsed = Math.Max(0.001, (DateTime.UtcNow - begin).TotalSeconds);
        var stats = simulator.Stats;
        var summary = new JsonObject
        {
            ["profile"] = profile,
            ["devices"] = count,
            ["seconds"] = Math.Round(elapsed, 1),
            ["peakConnected"] = stats.PeakConnected,
            ["messages"] = stats.Messages,
            ["messagesPerSecond"] = Math.Round(stats.Messages / elapsed, 1),
            ["shadowUpdatesApplied"] = stats.ShadowUpdates,
            ["jobsCompleted"] = stats.JobsCompleted,
            ["reconnects"] = stats.Reconnects,
            ["errors"] = stats.Errors,
        };
        if (stats.ErrorKinds.OrderByDescending(e => e.Value).FirstOrDefault() is { Key: { } error } top)
        {
            summary["mostCommonError"] = $"{error} ({top.Value}×)";
        }

        if (line is not null)
        {
            summary["plcRequests"] = line.Requests;
        }

        return new ApiAnswer(200, summary, null, null);
    }

    /// <summary>
    /// A device token for each CoAP device (kept in STATE/devices/THING.token, 0600, so a second run
    /// reuses it), with the fleet's device policy attached, as an installer would give a constrained
    /// device that has no TLS.
    /// </summary>
    private static async Task<ApiAnswer?> CoapTokensAsync(ApiClient api, IEnumerable<string> things, string stateDirectory, Dictionary<string, string> tokens, CancellationToken ct)
    {
        foreach (var thing in things)
        {
            var file = Path.Combine(stateDirectory, "devices", thing + ".token");
            if (File.Exists(file))
            {
                tokens[thing] = (await File.ReadAllTextAsync(file, ct)).Trim();
                continue;
            }

            var made = await api.SendAsync(HttpMethod.Post, $"/api/things/{ApiClient.Segment(thing)}/tokens", null, new JsonObject { ["description"] = "trellis simulate (CoAP)" }, ct);
            if (made.Body?["token"]?.GetValue<string>() is not { } token || made.Body["tokenArn"]?.GetValue<string>() is not { } arn)
            {
                return made;
            }

            var attached = await api.SendAsync(HttpMethod.Put, "/target-policies/trellis-sim-device", null, new JsonObject { ["target"] = arn }, ct);
            if (attached.Status != 200)
            {
                return attached;
            }

            Trellis.Device.IdentityFiles.WritePrivate(file, token);

            tokens[thing] = token;
        }

        return null;
    }

    /// <summary>A live table on a terminal; a line every 5 s otherwise (CI, a pipe).</summary>
    private static async Task ShowAsync(FleetStats stats, Task running, int count)
    {
        var last = (Messages: 0L, At: DateTime.UtcNow);
        string Rate()
        {
            var now = DateTime.UtcNow;
            var messages = stats.Messages;
            var rate = (messages - last.Messages) / Math.Max(0.001, (now - last.At).TotalSeconds);
            last = (messages, now);
            return rate.ToString("F0", CultureInfo.InvariantCulture);
        }

        if (Console.IsOutputRedirected || !AnsiConsole.Profile.Capabilities.Interactive)
        {
            while (await Task.WhenAny(running, Task.Delay(5000)) != running)
            {
                await Console.Error.WriteLineAsync($"trellis simulate: {stats.Connected}/{count} connected, {stats.Messages} messages ({Rate()}/s), {stats.ShadowUpdates} shadow updates, {stats.JobsCompleted} jobs, {stats.Errors} errors");
            }

            await running;
            return;
        }

        var table = new Table().AddColumns("connected", "messages", "messages/s", "shadow updates", "jobs", "reconnects", "errors");
        table.AddRow("0", "0", "0", "0", "0", "0", "0");
        await AnsiConsole.Live(table).StartAsync(async context =>
        {
            while (await Task.WhenAny(running, Task.Delay(1000)) != running)
            {
                table.UpdateCell(0, 0, $"{stats.Connected}/{count}").UpdateCell(0, 1, stats.Messages.ToString(CultureInfo.InvariantCulture)).UpdateCell(0, 2, Rate())
                    .UpdateCell(0, 3, stats.ShadowUpdates.ToString(CultureInfo.InvariantCulture)).UpdateCell(0, 4, stats.JobsCompleted.ToString(CultureInfo.InvariantCulture))
                    .UpdateCell(0, 5, stats.Reconnects.ToString(CultureInfo.InvariantCulture)).UpdateCell(0, 6, stats.Errors.ToString(CultureInfo.InvariantCulture));
                context.Refresh();
            }
        });
        await running;
    }

    /// <summary>The profile's policies, group, template and claim certificate (each created once); null when all is there.</summary>
    private static async Task<ApiAnswer?> SetUpAsync(ApiClient api, string profile, string template, string stateDirectory, string dataDirectory, CancellationToken ct)
    {
        var group = "sim-" + profile;
        var body = """
            {"Parameters": {"SerialNumber": {"Type": "String"}, "AWS::IoT::Certificate::Id": {"Type": "String"}},
             "Resources": {
              "thing": {"Type": "AWS::IoT::Thing", "OverrideSettings": {"ThingGroups": "MERGE"},
                "Properties": {"ThingName": {"Fn::Join": ["", ["sim-PROFILE-", {"Ref": "SerialNumber"}]]}, "AttributePayload": {"serial": {"Ref": "SerialNumber"}, "profile": "PROFILE"}, "ThingGroups": ["GROUP"]}},
              "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "Active"}},
              "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "trellis-sim-device"}}}}
            """.Replace("PROFILE", profile, StringComparison.Ordinal).Replace("GROUP", group, StringComparison.Ordinal);
        foreach (var (method, path, json) in new (HttpMethod, string, JsonNode?)[]
        {
            (HttpMethod.Post, "/policies/trellis-sim-device", new JsonObject { ["policyDocument"] = DevicePolicy }),
            (HttpMethod.Post, "/policies/trellis-sim-claim", new JsonObject { ["policyDocument"] = ClaimPolicy }),
            (HttpMethod.Post, "/thing-groups/" + group, new JsonObject()),
            (HttpMethod.Post, "/provisioning-templates", new JsonObject { ["templateName"] = template, ["templateBody"] = body, ["enabled"] = true, ["provisioningRoleArn"] = "arn:aws:iam::000000000000:role/trellis-sim" }),
        })
        {
            var answer = await api.SendAsync(method, path, null, json, ct);
            if (!answer.Ok && answer.ErrorType is not ("ResourceAlreadyExistsException" or "ResourceAlreadyExists"))
            {
                return answer;
            }
        }

        var certificatePath = Path.Combine(stateDirectory, "claim.cert.pem");
        if (File.Exists(certificatePath))
        {
            return null;
        }

        var caSource = Path.Combine(dataDirectory, "ca.pem");
        if (!File.Exists(caSource))
        {
            return new ApiAnswer(400, null, "InvalidRequestException", $"{caSource} is missing: point --data at the server's data folder (its ca.pem is what the devices trust)");
        }

        var certificate = await api.SendAsync(HttpMethod.Post, "/keys-and-certificate", "setAsActive=true", new JsonObject(), ct);
        if (!certificate.Ok)
        {
            return certificate;
        }

        var attach = await api.SendAsync(HttpMethod.Put, "/target-policies/trellis-sim-claim", null, new JsonObject { ["target"] = certificate.Body!["certificateArn"]!.GetValue<string>() }, ct);
        if (!attach.Ok)
        {
            return attach;
        }

        File.Copy(caSource, Path.Combine(stateDirectory, "ca.pem"), overwrite: true);
        var keyPath = Path.Combine(stateDirectory, "claim.private.key");
        Trellis.Device.IdentityFiles.WritePrivate(keyPath, certificate.Body["keyPair"]!["PrivateKey"]!.GetValue<string>());

        await File.WriteAllTextAsync(certificatePath, certificate.Body["certificatePem"]!.GetValue<string>(), ct);
        _ = X509Certificate2.CreateFromPemFile(certificatePath, keyPath); // written whole and readable
        return null;
    }
}
