using System.Diagnostics;
using System.Text;

namespace Trellis.IntegrationTests.TestKit;

/// <summary>Runs a real peer (mosquitto_pub, aws, python3 …) with a timeout and captured output.</summary>
public static class ExternalTool
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public string Output => Stdout + Stderr;
    }

    public static Task<Result> RunAsync(string file, IEnumerable<string> args, TimeSpan timeout, IDictionary<string, string>? env = null, CancellationToken cancellationToken = default) =>
        RunAsync(file, args, timeout, env, closeInput: false, cancellationToken);

    /// <summary>Runs a peer with an empty standard input, for peers that read it until it ends (openssl s_client).</summary>
    public static Task<Result> RunWithoutInputAsync(string file, IEnumerable<string> args, TimeSpan timeout, CancellationToken cancellationToken) =>
        RunAsync(file, args, timeout, null, closeInput: true, cancellationToken);

    private static async Task<Result> RunAsync(string file, IEnumerable<string> args, TimeSpan timeout, IDictionary<string, string>? env, bool closeInput, CancellationToken cancellationToken)
    {
        using var process = Start(file, args, env);
        if (closeInput)
        {
            process.StandardInput.Close();
        }

        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            return new Result(-1, await stdout, await stderr + $"\n[timed out after {timeout.TotalSeconds} s]");
        }

        return new Result(process.ExitCode, await stdout, await stderr);
    }

    /// <summary>Runs a peer that must succeed: a non-zero exit or a time-out fails the test with the peer's output.</summary>
    public static async Task<Result> RunCheckedAsync(string file, IEnumerable<string> args, TimeSpan timeout, IDictionary<string, string>? env = null, CancellationToken cancellationToken = default)
    {
        var result = await RunAsync(file, args, timeout, env, cancellationToken);
        Xunit.Assert.True(result.ExitCode == 0, $"{file} exited with {result.ExitCode}: {result.Output}");
        return result;
    }

    /// <summary>
    /// Starts mosquitto_sub with <paramref name="args"/> and its debug output (-d), and returns once its
    /// SUBACK has granted every filter: the subscription is in place before the test goes on (for a
    /// server in another process, whose broker the test cannot ask). Its lines hold the debug lines
    /// ("Client … received PUBLISH (…, 'topic', …)") beside the messages: match messages by how they start.
    /// </summary>
    public static async Task<Background> StartSubscriberAsync(IEnumerable<string> args, TimeSpan timeout, CancellationToken cancellationToken)
    {
        // stdbuf: mosquitto_sub flushes its messages, not its debug lines, which a pipe would hold back.
        var subscriber = StartBackground("stdbuf", ["-oL", "mosquitto_sub", "-d", .. args]);
        await subscriber.WaitForLineAsync(l => l.StartsWith("Subscribed (mid:", StringComparison.Ordinal), timeout, cancellationToken);

        // "Subscribed (mid: 1): 1, 1": a granted QoS per filter; 128 and up is a refusal.
        var granted = subscriber.Lines.FirstOrDefault(l => l.StartsWith("Subscribed (mid:", StringComparison.Ordinal));
        var codes = granted?[(granted.IndexOf("): ", StringComparison.Ordinal) + 3)..].Split(", ").Select(c => int.Parse(c, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        if (codes is null || codes.Any(c => c >= 128))
        {
            subscriber.Dispose();
            Xunit.Assert.Fail($"mosquitto_sub {(codes is null ? "never got its SUBACK" : "was refused: " + granted)}\n{string.Join('\n', subscriber.Lines)}\n{subscriber.Stderr}");
        }

        return subscriber;
    }

    /// <summary>Starts a long-running peer (mosquitto_sub) whose output lines are collected as they come.</summary>
    public static Background StartBackground(string file, IEnumerable<string> args) => new(Start(file, args, null));

    private static Process Start(string file, IEnumerable<string> args, IDictionary<string, string>? env)
    {
        var info = new ProcessStartInfo(Resolve(file))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        if (env is not null)
        {
            foreach (var (key, value) in env)
            {
                info.Environment[key] = value;
            }
        }

        return Process.Start(info) ?? throw new InvalidOperationException($"could not start {file}");
    }

    /// <summary>Finds a tool on PATH; a missing peer fails the test with the fix.</summary>
    public static string Resolve(string file)
    {
        if (file.Contains('/', StringComparison.Ordinal))
        {
            return file;
        }

        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':'))
        {
            var candidate = Path.Combine(dir, file);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException($"'{file}' is not installed: run scripts/install-deps.sh");
    }

    public sealed class Background : IDisposable
    {
        private readonly Process _process;
        private readonly List<string> _lines = [];
        private readonly StringBuilder _stderr = new();
        private readonly Lock _lock = new();

        internal Background(Process process)
        {
            _process = process;
            process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is not null)
                {
                    lock (_lock)
                    {
                        _lines.Add(e.Data);
                    }
                }
            };
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is not null)
                {
                    lock (_lock)
                    {
                        _stderr.AppendLine(e.Data);
                    }
                }
            };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        public IReadOnlyList<string> Lines
        {
            get
            {
                lock (_lock)
                {
                    return [.. _lines];
                }
            }
        }

        public string Stderr
        {
            get
            {
                lock (_lock)
                {
                    return _stderr.ToString();
                }
            }
        }

        public bool HasExited => _process.HasExited;

        /// <summary>The process id (to stop or signal the peer, e.g. SIGSTOP to make a client go silent).</summary>
        public int Id => _process.Id;

        public int ExitCode => _process.ExitCode;

        /// <summary>Waits until a line satisfies <paramref name="predicate"/>; false at the deadline.</summary>
        public Task<bool> WaitForLineAsync(Func<string, bool> predicate, TimeSpan timeout, CancellationToken cancellationToken = default) =>
            Eventually.TrueAsync(() => Lines.Any(predicate), timeout, cancellationToken);

        public Task<bool> WaitForExitAsync(TimeSpan timeout, CancellationToken cancellationToken = default) =>
            Eventually.TrueAsync(() => _process.HasExited, timeout, cancellationToken);

        private bool _disposed;

        public void Dispose()
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(5000);
            }

            _process.Dispose();
        }
    }
}
