using System.CommandLine;
using System.Globalization;
using Trellis.Server;

namespace Trellis.Cli;

/// <summary><c>trellis serve</c>: runs the server. Every flag has a <c>TRELLIS_*</c> environment variable.</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var defaults = new TrellisServerOptions();
        var data = Flag("--data", "TRELLIS_DATA", defaults.DataDirectory, "Data folder (registry, CA, credentials)");
        var mqtt = Flag("--mqtt", "TRELLIS_MQTT", defaults.Mqtt, "MQTT over TCP, HOST:PORT (port 0 = any free port, 'off' disables)");
        var mqtts = Flag("--mqtts", "TRELLIS_MQTTS", defaults.Mqtts, "MQTT over TLS with device certificates, HOST:PORT");
        var ws = Flag("--ws", "TRELLIS_WS", defaults.WebSocket, "MQTT over WebSockets at /mqtt, HOST:PORT");
        var coap = Flag("--coap", "TRELLIS_COAP", defaults.Coap, "CoAP over UDP for constrained devices, HOST:PORT");
        var coaps = Flag("--coaps", "TRELLIS_COAPS", defaults.Coaps, "CoAP over DTLS 1.2 (a thing's pre-shared key or its certificate), HOST:PORT");
        var http = Flag("--http", "TRELLIS_HTTP", defaults.Http, "Management API, HOST:PORT ('off' with --https on: TLS only)");
        var https = Flag("--https", "TRELLIS_HTTPS", defaults.Https, "Management API and firmware downloads over TLS with the server certificate (clients trust data/ca.pem), HOST:PORT (download links use it when on)");
        var logLevel = Flag("--log-level", "TRELLIS_LOG_LEVEL", defaults.LogLevel, "Trace, Debug, Information, Warning or Error");
        var hostname = new Option<string[]>("--hostname") { Description = "Host name or IP added to the server certificate (repeatable; env TRELLIS_HOSTNAME, comma-separated)", AllowMultipleArgumentsPerToken = false };
        var anonymous = new Option<bool>("--allow-anonymous") { Description = "Accept MQTT clients without credentials under an allow-all policy (development only; env TRELLIS_ALLOW_ANONYMOUS=1)" };
        var maxPacket = new Option<int?>("--max-packet-bytes") { Description = "Largest MQTT packet accepted (default 131072; env TRELLIS_MAX_PACKET_BYTES)" };
        var mqttThreads = new Option<int?>("--mqtt-threads") { Description = "Threads serving the plain-TCP MQTT listener, each with its own epoll loop; 0 uses the .NET socket engine (default: one per CPU; env TRELLIS_MQTT_THREADS)" };
        var defender = Flag("--device-defender", "TRELLIS_DEVICE_DEFENDER", "on", "Count each client's messages, connects and refusals for Device Defender's cloud-side metrics: on or off");
        var coapIdle = new Option<int?>("--coap-idle") { Description = "Seconds a CoAP device stays online after its last request unless it observes something (default 300; env TRELLIS_COAP_IDLE)" };
        var storeMemory = new Option<int?>("--store-memory-mb") { Description = "Memory the time-series store may use for its cache and queries, in MiB (default 256; env TRELLIS_STORE_MEMORY_MB)" };

        var command = new Command("serve", "Run the Trellis server with its embedded storage in the data folder.")
        {
            data, mqtt, mqtts, ws, coap, coaps, coapIdle, http, https, hostname, anonymous, maxPacket, mqttThreads, storeMemory, defender, logLevel,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var hostnames = parse.GetValue(hostname) is { Length: > 0 } given
                ? given
                : (Environment.GetEnvironmentVariable("TRELLIS_HOSTNAME") ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var options = new TrellisServerOptions
            {
                DataDirectory = parse.GetValue(data)!,
                Mqtt = parse.GetValue(mqtt)!,
                Mqtts = parse.GetValue(mqtts)!,
                WebSocket = parse.GetValue(ws)!,
                Coap = parse.GetValue(coap)!,
                Coaps = parse.GetValue(coaps)!,
                Http = parse.GetValue(http)!,
                Https = parse.GetValue(https)!,
                Hostnames = hostnames,
                AllowAnonymous = parse.GetValue(anonymous) || Environment.GetEnvironmentVariable("TRELLIS_ALLOW_ANONYMOUS") is "1" or "true",
                MaxPacketBytes = parse.GetValue(maxPacket)
                    ?? (int.TryParse(Environment.GetEnvironmentVariable("TRELLIS_MAX_PACKET_BYTES"), NumberStyles.None, CultureInfo.InvariantCulture, out var m) ? m : defaults.MaxPacketBytes),
                MqttThreads = parse.GetValue(mqttThreads)
                    ?? (int.TryParse(Environment.GetEnvironmentVariable("TRELLIS_MQTT_THREADS"), NumberStyles.None, CultureInfo.InvariantCulture, out var t) ? t : defaults.MqttThreads),
                CoapIdleSeconds = parse.GetValue(coapIdle)
                    ?? (int.TryParse(Environment.GetEnvironmentVariable("TRELLIS_COAP_IDLE"), NumberStyles.None, CultureInfo.InvariantCulture, out var idle) ? idle : defaults.CoapIdleSeconds),
                TelemetryMemoryMiB = parse.GetValue(storeMemory)
                    ?? (int.TryParse(Environment.GetEnvironmentVariable("TRELLIS_STORE_MEMORY_MB"), NumberStyles.None, CultureInfo.InvariantCulture, out var mb) ? mb : defaults.TelemetryMemoryMiB),
                LogLevel = parse.GetValue(logLevel)!,
                DeviceDefender = parse.GetValue(defender) switch
                {
                    "on" => true,
                    "off" => false,
                    var other => throw new ArgumentException($"--device-defender is on or off, not '{other}'."),
                },
            };

            TrellisServer server;
            try
            {
                server = await TrellisServer.StartAsync(options, cancellationToken: cancellationToken);
            }
            catch (Exception e) when (e is ArgumentException or IOException or InvalidOperationException)
            {
                await Console.Error.WriteLineAsync($"trellis: cannot start: {e.Message}");
                return 1;
            }

            await using (server)
            {
                PrintBanner(server);
                await server.WaitForShutdownAsync(CancellationToken.None);
            }

            return 0;
        });
        return command;
    }

    private static Option<string> Flag(string name, string env, string fallback, string description) => new(name)
    {
        Description = $"{description} (env {env}; default {fallback})",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable(env) is { Length: > 0 } value ? value : fallback,
    };

    private static void PrintBanner(TrellisServer server)
    {
        var data = server.Data;
        var http = server.Port("http");
        var https = server.Port("https");
        Console.WriteLine("Trellis is running.");
        var loops = server.MqttEventLoops;
        var engine = loops > 0 ? $", {loops} event loop{(loops == 1 ? string.Empty : "s")}" : ", .NET socket engine";
        Console.WriteLine($"  MQTT (TCP)          {Describe(server, "mqtt", detail: engine)}");
        Console.WriteLine($"  MQTT (TLS, X.509)   {Describe(server, "mqtts")}");
        Console.WriteLine($"  MQTT (WebSocket)    {Describe(server, "ws", "/mqtt")}");
        Console.WriteLine($"  CoAP (UDP)          {Describe(server, "coap", detail: " (docs/coap.md)")}");
        Console.WriteLine($"  CoAP (DTLS)         {Describe(server, "coaps", detail: " (PSK or X.509)")}");
        var api = new List<string>();
        if (http > 0)
        {
            api.Add($"http://127.0.0.1:{http}");
        }

        if (https > 0)
        {
            api.Add($"https://localhost:{https} (certificate from the Device CA)");
        }

        Console.WriteLine($"  Management API      {string.Join(", ", api)}");
        Console.WriteLine($"  Data folder         {data.Root}");
        Console.WriteLine($"  Device CA           {data.CaCertificatePath}");
        Console.WriteLine($"  Admin credentials   {data.CredentialsPath} (profile trellis)");
        Console.WriteLine();
        Console.WriteLine("Try it:");
        var (url, awsCa, botoCa) = http > 0
            ? ($"http://127.0.0.1:{http}", string.Empty, string.Empty)
            : ($"https://localhost:{https}", $" --ca-bundle {data.CaCertificatePath}", $", verify='{data.CaCertificatePath}'");
        Console.WriteLine($"  AWS_SHARED_CREDENTIALS_FILE={data.CredentialsPath} AWS_PROFILE=trellis aws iot list-things --endpoint-url {url}{awsCa} --region us-east-1");
        Console.WriteLine($"  python3 -c \"import boto3; print(boto3.Session(profile_name='trellis').client('iot', endpoint_url='{url}', region_name='us-east-1'{botoCa}).list_things())\"");
        Console.Out.Flush();
    }

    /// <summary>"off", or the listener's port with its path and <paramref name="detail"/>.</summary>
    private static string Describe(TrellisServer server, string listener, string path = "", string detail = "")
    {
        var port = server.Port(listener);
        return port == 0 ? "off" : $"port {port}{path}{detail}";
    }
}
