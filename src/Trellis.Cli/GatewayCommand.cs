using System.CommandLine;
using Microsoft.Extensions.Logging;
using Trellis.Device;
using Trellis.Gateway;
using Trellis.Gateway.Forwarding;
using Trellis.Gateway.Local;
using Trellis.Gateway.Modbus;
using Trellis.Gateway.Rules;

namespace Trellis.Cli;

/// <summary>
/// <c>trellis gateway --identity DIR --data DIR --mqtt H:P [--modbus FILE]</c> (docs/gateway.md):
/// connects upstream with the gateway's own certificate (a folder <c>trellis provision</c> wrote),
/// serves leaf devices on a local MQTT listener and polls Modbus devices for theirs, and forwards
/// everything through its disk queue. <c>trellis gateway add-leaf</c> lets a leaf in.
/// </summary>
internal static class GatewayCommand
{
    public static Command Create()
    {
        var identity = new Option<string>("--identity") { Description = "The gateway's device folder, as `trellis provision --thing NAME --out DIR` writes it (with --claim: written on first start)", Required = true };
        var claim = new Option<string?>("--claim") { Description = "A claim's device folder (`trellis provision` of the claim thing): when --identity has no identity yet, the gateway provisions itself by claim (fleet provisioning) on first start" };
        var template = new Option<string?>("--template") { Description = "With --claim: the provisioning template the gateway registers itself through" };
        var serial = new Option<string?>("--serial") { Description = "With --claim: the serial number given to the template as SerialNumber (default: this machine's host name)" };
        var data = new Option<string>("--data") { Description = "The gateway's own data folder: its disk queue and its leaves (made private to this user)", Required = true };
        var mqtt = new Option<string>("--mqtt") { Description = "HOST:PORT of the local MQTT listener for leaf devices, or off", Required = true };
        var coap = new Option<string>("--coap") { Description = "HOST:PORT of the local CoAP listener for constrained leaves (POST /topics/…?thing=LEAF&token=PASSWORD), or off", DefaultValueFactory = _ => "off" };
        var modbus = new Option<string?>("--modbus") { Description = "Register map (JSON) of the Modbus devices to poll (docs/gateway.md)" };
        var rules = new Option<string?>("--rules") { Description = "Local rules (JSON): the server's SQL run on the gateway, per message or per time window (docs/gateway.md)" };
        var maxMb = new Option<long>("--queue-max-mb") { Description = "Megabytes of messages the disk queue may hold", DefaultValueFactory = _ => 1024 };
        var whenFull = new Option<string>("--queue-full") { Description = "When the queue is full: drop-oldest (count and delete the oldest) or hold (leaves wait for their PUBACK)", DefaultValueFactory = _ => "drop-oldest" };
        var fsync = new Option<string>("--fsync") { Description = "always (each commit is fsynced: survives a power cut) or os (survives a crash of the gateway, not of the machine)", DefaultValueFactory = _ => "always" };
        var logLevel = new Option<string>("--log-level") { Description = "Trace, Debug, Information, Warning or Error", DefaultValueFactory = _ => "Information" };
        var command = new Command("gateway", "Run an edge gateway: leaf devices on a local MQTT listener and Modbus devices, forwarded upstream through a disk queue that loses nothing.")
        {
            identity, claim, template, serial, data, mqtt, coap, modbus, rules, maxMb, whenFull, fsync, logLevel,
        };
        command.Subcommands.Add(AddLeaf());
        command.SetAction(async (parse, ct) =>
        {
            using var logs = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(Enum.Parse<LogLevel>(parse.GetValue(logLevel)!, ignoreCase: true)));
            var identityFolder = parse.GetValue(identity)!;
            if (!File.Exists(Path.Combine(identityFolder, "device.json")) && parse.GetValue(claim) is { } claimFolder)
            {
                if (await FirstStartAsync(claimFolder, parse.GetValue(template), parse.GetValue(serial) ?? Environment.MachineName, identityFolder, logs, ct) is { } failed)
                {
                    return failed;
                }
            }

            EdgeGatewayOptions options;
            try
            {
                var full = parse.GetValue(whenFull) switch
                {
                    "drop-oldest" => QueueFullPolicy.DropOldest,
                    "hold" => QueueFullPolicy.Hold,
                    var other => throw new InvalidOperationException($"--queue-full {other}: say drop-oldest or hold"),
                };
                var sync = parse.GetValue(fsync) switch
                {
                    "always" => true,
                    "os" => false,
                    var other => throw new InvalidOperationException($"--fsync {other}: say always or os"),
                };
                var map = parse.GetValue(modbus) is { } file ? RegisterMap.Load(file) : null;
                options = new EdgeGatewayOptions
                {
                    Identity = DeviceOptions.FromFolder(parse.GetValue(identity)!),
                    DataDirectory = parse.GetValue(data)!,
                    Mqtt = parse.GetValue(mqtt) is "off" ? null : Endpoint(parse.GetValue(mqtt)!, "--mqtt"),
                    Coap = parse.GetValue(coap) is "off" ? null : Endpoint(parse.GetValue(coap)!, "--coap"),
                    Modbus = map,
                    RulesFile = parse.GetValue(rules),
                    Queue = new ForwardStoreOptions { MaxBytes = parse.GetValue(maxMb) * 1024 * 1024, WhenFull = full, FsyncEveryCommit = sync },
                };
            }
            catch (Exception e) when (e is RegisterMapException or IOException or InvalidOperationException or FormatException or System.Security.Cryptography.CryptographicException)
            {
                await Console.Error.WriteLineAsync("trellis gateway: " + e.Message);
                return 2;
            }

            EdgeGateway gateway;
            try
            {
                gateway = new EdgeGateway(options, logs);
            }
            catch (EdgeRulesException e)
            {
                await Console.Error.WriteLineAsync("trellis gateway: " + e.Message);
                return 2;
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException or Microsoft.Data.Sqlite.SqliteException)
            {
                await Console.Error.WriteLineAsync($"trellis gateway: the data folder {options.DataDirectory} cannot be used: {e.Message}");
                return 2;
            }

            await using (gateway)
            {
                try
                {
                    await gateway.RunAsync(
                        () => Console.WriteLine(
                            $"Trellis gateway {options.Identity.ThingName}: " +
                            (options.Mqtt is null ? "no local MQTT listener" : $"leaves on MQTT port {gateway.MqttPort} ({gateway.LeafCount} leaves)") +
                            (options.Coap is null ? string.Empty : $", CoAP port {gateway.CoapPort}") +
                            (options.Modbus is { } map ? $", {map.Devices.Count} Modbus device(s)" : string.Empty) +
                            (gateway.RuleCount > 0 ? $", {gateway.RuleCount} local rule(s)" : string.Empty) +
                            $"; upstream {options.Identity.Host}:{options.Identity.Port}; {gateway.Queue.Count} message(s) queued in {options.DataDirectory}."),
                        ct);
                }
                catch (InvalidOperationException e) when (e.InnerException is System.Net.Sockets.SocketException)
                {
                    await Console.Error.WriteLineAsync("trellis gateway: " + e.Message);
                    return 2;
                }
            }

            return 0;
        });
        return command;
    }

    /// <summary>Fleet provisioning by claim into the identity folder; null when done, else the exit code.</summary>
    private static async Task<int?> FirstStartAsync(string claimFolder, string? template, string serial, string identityFolder, ILoggerFactory logs, CancellationToken ct)
    {
        if (template is null)
        {
            await Console.Error.WriteLineAsync("trellis gateway: --claim needs --template NAME, the provisioning template the gateway registers itself through (docs/gateway.md)");
            return 2;
        }

        DeviceOptions claim;
        try
        {
            claim = DeviceOptions.FromFolder(claimFolder);
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or System.Security.Cryptography.CryptographicException)
        {
            await Console.Error.WriteLineAsync("trellis gateway: --claim " + claimFolder + ": " + e.Message);
            return 2;
        }

        try
        {
            await GatewayClaim.ProvisionAsync(claim, template, serial, identityFolder, logs.CreateLogger("Trellis.Gateway"), ct);
            return null;
        }
        catch (ProvisioningRejectedException e)
        {
            await Console.Error.WriteLineAsync($"trellis gateway: fleet provisioning through template {template} was refused ({e.StatusCode} {e.ErrorCode}: {e.Reason}). Check that the template exists and is enabled, that it makes a thing from SerialNumber and attaches a policy, and that the claim's policy allows its topics (docs/provisioning.md)");
            return 2;
        }
        catch (InvalidOperationException e)
        {
            await Console.Error.WriteLineAsync($"trellis gateway: fleet provisioning through template {template} was refused: {e.Message} (the claim's policy, docs/provisioning.md)");
            return 2;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return 130;
        }
    }

    private static Command AddLeaf()
    {
        var data = new Option<string>("--data") { Description = "The gateway's data folder", Required = true };
        var thing = new Option<string>("--thing") { Description = "The leaf's thing name (its client id and user name on the gateway)", Required = true };
        var command = new Command("add-leaf", "Let a leaf device connect to the gateway's local listener; prints its password (shown once).") { data, thing };
        command.SetAction(async (parse, ct) =>
        {
            string password;
            try
            {
                password = LeafRegistry.Add(parse.GetValue(data)!, parse.GetValue(thing)!);
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or IOException or UnauthorizedAccessException)
            {
                await Console.Error.WriteLineAsync("trellis gateway add-leaf: " + e.Message);
                return 2;
            }

            Console.WriteLine($"Leaf {parse.GetValue(thing)} added; restart the gateway to let it in. It connects with client id and user name {parse.GetValue(thing)} and this password (shown once):");
            Console.WriteLine(password);
            return 0;
        });
        return command;
    }

    private static System.Net.IPEndPoint Endpoint(string value, string flag)
    {
        var colon = value.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(value.AsSpan(colon + 1), out var port) || port is < 0 or > 65535)
        {
            throw new FormatException($"{flag} {value}: give HOST:PORT, such as 0.0.0.0:{(flag == "--coap" ? 5683 : 1883)}, or off");
        }

        var host = value[..colon].Trim('[', ']');
        var address = host is "localhost" ? System.Net.IPAddress.Loopback
            : System.Net.IPAddress.TryParse(host, out var parsed) ? parsed
            : throw new FormatException($"{flag} {value}: {host} is not an IP address");
        return new System.Net.IPEndPoint(address, port);
    }
}
