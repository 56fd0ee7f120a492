using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Trellis.IntegrationTests.TestKit;

/// <summary>
/// <c>trellis serve</c> as a real process on free loopback ports, anonymous clients allowed: for
/// tests that must kill the server (kill -9) or see what the command prints.
/// </summary>
public sealed partial class ServerProcess : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly Process _process;
    private readonly System.Text.StringBuilder _output = new();
    private readonly Lock _lock = new();

    private ServerProcess(Process process, string data)
    {
        _process = process;
        DataDirectory = data;
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public string DataDirectory { get; }

    public int MqttPort { get; private set; }

    public int HttpPort { get; private set; }

    /// <summary>The HTTPS API's port (0 when it is off).</summary>
    public int HttpsPort { get; private set; }

    /// <summary>The CoAP endpoint's UDP port (0 when it is off).</summary>
    public int CoapPort { get; private set; }

    /// <summary>The CoAP-over-DTLS port, from the banner.</summary>
    public int CoapsPort { get; private set; }

    public string Endpoint => HttpPort > 0 ? $"http://127.0.0.1:{HttpPort.ToString(CultureInfo.InvariantCulture)}" : HttpsEndpoint;

    /// <summary>The HTTPS API, by the name in the server certificate.</summary>
    public string HttpsEndpoint => $"https://localhost:{HttpsPort.ToString(CultureInfo.InvariantCulture)}";

    public string Banner { get; private set; } = string.Empty;

    public string Output
    {
        get
        {
            lock (_lock)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>
    /// Starts the server on <paramref name="data"/> (given through TRELLIS_DATA, as documented) and
    /// waits for its banner. <paramref name="environment"/> adds variables such as TRELLIS_Broker__….
    /// </summary>
    public static async Task<ServerProcess> StartAsync(string data, CancellationToken ct, IDictionary<string, string>? environment = null, params string[] extraArgs)
    {
        var info = new ProcessStartInfo(TrellisCli.FileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var leading in TrellisCli.Leading)
        {
            info.ArgumentList.Add(leading);
        }

        info.ArgumentList.Add("serve");
        foreach (var listener in new[] { "--mqtt", "--mqtts", "--ws", "--coap", "--coaps", "--http" })
        {
            // A listener given in extraArgs (a fixed port, to restart on it) replaces the free-port default.
            if (!extraArgs.Contains(listener))
            {
                info.ArgumentList.Add(listener);
                info.ArgumentList.Add("127.0.0.1:0");
            }
        }

        foreach (var arg in extraArgs.Prepend("--allow-anonymous"))
        {
            info.ArgumentList.Add(arg);
        }

        info.Environment["TRELLIS_DATA"] = data;
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }

        var server = new ServerProcess(Process.Start(info)!, data);
        var started = await Eventually.TrueAsync(() => server._process.HasExited || (MqttPortPattern().IsMatch(server.Output) && server.Output.Contains("Try it:", StringComparison.Ordinal)), Timeout, ct);
        Assert.True(started && !server._process.HasExited, "no banner: " + server.Output);
        server.MqttPort = int.Parse(MqttPortPattern().Match(server.Output).Groups[1].Value, CultureInfo.InvariantCulture);
        server.HttpPort = HttpPortPattern().Match(server.Output) is { Success: true } http ? int.Parse(http.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
        server.HttpsPort = HttpsPortPattern().Match(server.Output) is { Success: true } https ? int.Parse(https.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
        server.CoapPort = CoapPortPattern().Match(server.Output) is { Success: true } coap ? int.Parse(coap.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
        server.CoapsPort = CoapsPortPattern().Match(server.Output) is { Success: true } coaps ? int.Parse(coaps.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
        server.Banner = server.Output;
        return server;
    }

    /// <summary>mosquitto_* arguments for an anonymous client on the plain listener.</summary>
    public List<string> Anonymous(string clientId) =>
        ["-h", "127.0.0.1", "-p", MqttPort.ToString(CultureInfo.InvariantCulture), "-i", clientId];

    /// <summary>One SigV4-signed request with botocore's signer (Scripts/signed_request.py), as the data folder's admin or as <paramref name="credentials"/>.</summary>
    public async Task<System.Text.Json.Nodes.JsonNode> SignedAsync(string method, string path, string? body, CancellationToken ct, (string KeyId, string Secret)? credentials = null)
    {
        List<string> args = [Path.Combine(AppContext.BaseDirectory, "Scripts", "signed_request.py"), Endpoint, method, path];
        if (body is not null)
        {
            args.Add(body);
        }

        var result = await ExternalTool.RunCheckedAsync("python3", args, Timeout, AwsEnvironment(credentials), ct);
        return System.Text.Json.Nodes.JsonNode.Parse(result.Stdout)!;
    }

    /// <summary>boto3 "iot" calls in order (Scripts/iot_calls.py) with the data folder's admin key; one result per call.</summary>
    public async Task<System.Text.Json.Nodes.JsonNode?[]> IotCallsAsync((string Call, object Args)[] calls, CancellationToken ct)
    {
        var json = System.Text.Json.JsonSerializer.Serialize(calls.Select(c => new { call = c.Call, args = c.Args }));
        var result = await ExternalTool.RunCheckedAsync("python3", [Path.Combine(AppContext.BaseDirectory, "Scripts", "iot_calls.py"), Endpoint, json], Timeout, AwsEnvironment(null), ct);
        return [.. System.Text.Json.Nodes.JsonNode.Parse(result.Stdout)!.AsArray()];
    }

    /// <summary>The AWS environment for the data folder's credentials file, or for another key.</summary>
    public Dictionary<string, string> AwsEnvironment((string KeyId, string Secret)? credentials)
    {
        var env = new Dictionary<string, string>
        {
            ["AWS_SHARED_CREDENTIALS_FILE"] = Path.Combine(DataDirectory, "credentials"),
            ["AWS_PROFILE"] = "trellis",
            ["AWS_DEFAULT_REGION"] = "us-east-1",
            ["AWS_EC2_METADATA_DISABLED"] = "true",
        };
        if (credentials is { } given)
        {
            env.Remove("AWS_PROFILE");
            env["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null";
            env["AWS_ACCESS_KEY_ID"] = given.KeyId;
            env["AWS_SECRET_ACCESS_KEY"] = given.Secret;
        }

        return env;
    }

    /// <summary>SIGKILL: no shutdown code runs, as in a crash or a power cut of the process.</summary>
    public void Kill9()
    {
        _process.Kill();
        _process.WaitForExit(10_000);
    }

    public async Task<int> TerminateAsync(CancellationToken ct)
    {
        using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]);
        await kill.WaitForExitAsync(ct);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(Timeout);
        await _process.WaitForExitAsync(cts.Token);
        return _process.ExitCode;
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            _process.WaitForExit(10_000);
        }

        _process.Dispose();
    }

    [GeneratedRegex(@"MQTT \(TCP\)\s+port (\d+)")]
    private static partial Regex MqttPortPattern();

    [GeneratedRegex(@"Management API\s+http://127\.0\.0\.1:(\d+)")]
    private static partial Regex HttpPortPattern();

    [GeneratedRegex(@"https://localhost:(\d+)")]
    private static partial Regex HttpsPortPattern();

    [GeneratedRegex(@"CoAP \(UDP\)\s+port (\d+)")]
    private static partial Regex CoapPortPattern();

    [GeneratedRegex(@"CoAP \(DTLS\)\s+port (\d+)")]
    private static partial Regex CoapsPortPattern();

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_lock)
            {
                _output.AppendLine(line);
            }
        }
    }
}
