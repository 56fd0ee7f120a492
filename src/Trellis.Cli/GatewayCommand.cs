using System.CommandLine;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Trellis.Device;
using Trellis.Gateway.Modbus;

namespace Trellis.Cli;

/// <summary>
/// <c>trellis gateway --identity DIR --modbus FILE</c> (docs/gateway.md): connects upstream with the
/// gateway's own certificate (a folder <c>trellis provision</c> wrote) and bridges Modbus devices
/// to their leaf things: polled values up as telemetry, desired shadow state down to registers.
/// </summary>
internal static class GatewayCommand
{
    public static Command Create()
    {
        var identity = new Option<string>("--identity") { Description = "The gateway's device folder, as `trellis provision --thing NAME --out DIR` writes it", Required = true };
        var modbus = new Option<string>("--modbus") { Description = "Register map (JSON) of the Modbus devices to poll (docs/gateway.md)", Required = true };
        var logLevel = new Option<string>("--log-level") { Description = "Trace, Debug, Information, Warning or Error", DefaultValueFactory = _ => "Information" };
        var command = new Command("gateway", "Run an edge gateway: Modbus devices polled for their leaf things, over the gateway's own certificate.") { identity, modbus, logLevel };
        command.SetAction(async (parse, ct) =>
        {
            RegisterMap map;
            DeviceOptions options;
            try
            {
                map = RegisterMap.Load(parse.GetValue(modbus)!);
                options = Identity(parse.GetValue(identity)!);
            }
            catch (Exception e) when (e is RegisterMapException or IOException or InvalidOperationException or System.Security.Cryptography.CryptographicException)
            {
                await Console.Error.WriteLineAsync("trellis gateway: " + e.Message);
                return 2;
            }

            using var logs = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(Enum.Parse<LogLevel>(parse.GetValue(logLevel)!, ignoreCase: true)));
            var logger = logs.CreateLogger("Trellis.Gateway");
            await using var upstream = await TrellisDevice.ConnectAsync(options, ct);
            Console.WriteLine($"Trellis gateway {options.ThingName} is connected to {options.Host}:{options.Port}; polling {map.Devices.Count} Modbus device(s) for {string.Join(", ", map.Devices.Select(d => d.Thing))}.");
            try
            {
                await new ModbusBridge(map, upstream, logger).RunAsync(ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
            }

            return 0;
        });
        return command;
    }

    /// <summary>The gateway's identity from its device folder: device.json (thing, host, port), the certificate, its key and the CA.</summary>
    private static DeviceOptions Identity(string folder)
    {
        var description = Path.Combine(folder, "device.json");
        if (!File.Exists(description))
        {
            throw new InvalidOperationException($"{description} is missing: make the folder with `trellis provision --thing NAME --out {folder}`.");
        }

        var device = JsonNode.Parse(File.ReadAllText(description)) as JsonObject ?? throw new InvalidOperationException($"{description} is not a JSON object.");
        var thing = device["thingName"]?.GetValue<string>() ?? throw new InvalidOperationException($"{description} names no thingName.");
        return DeviceOptions.FromPemFiles(device["host"]?.GetValue<string>() ?? "localhost", device["port"]?.GetValue<int>() ?? 8883, thing,
            Path.Combine(folder, thing + ".cert.pem"), Path.Combine(folder, thing + ".private.key"), Path.Combine(folder, "ca.pem"));
    }
}
