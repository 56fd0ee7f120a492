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

    public string Endpoint => $"http://127.0.0.1:{HttpPort.ToString(CultureInfo.InvariantCulture)}";

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

    public static string DllPath() => TrellisCli.DllPath();

    /// <summary>
    /// Starts the server on <paramref name="data"/> (given through TRELLIS_DATA, as documented) and
    /// waits for its banner. <paramref name="environment"/> adds variables such as TRELLIS_Broker__….
    /// </summary>
    public static async Task<ServerProcess> StartAsync(string data, CancellationToken ct, IDictionary<string, string>? environment = null, params string[] extraArgs)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { DllPath(), "serve", "--mqtt", "127.0.0.1:0", "--mqtts", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--http", "127.0.0.1:0", "--allow-anonymous" }.Concat(extraArgs))
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
        server.HttpPort = int.Parse(HttpPortPattern().Match(server.Output).Groups[1].Value, CultureInfo.InvariantCulture);
        server.Banner = server.Output;
        return server;
    }

    /// <summary>mosquitto_* arguments for an anonymous client on the plain listener.</summary>
    public List<string> Anonymous(string clientId) =>
        ["-h", "127.0.0.1", "-p", MqttPort.ToString(CultureInfo.InvariantCulture), "-i", clientId];

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
