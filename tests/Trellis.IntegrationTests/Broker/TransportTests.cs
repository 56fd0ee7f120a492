using System.Diagnostics;
using System.Globalization;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Broker;

/// <summary>
/// The plain-TCP listener with its epoll loops (one, two) and with the runtime's socket engine (0):
/// a publisher bursting more than every buffer can hold to a subscriber that stops reading is held
/// back (TCP flow control), and once the subscriber reads again every message arrives, whole.
/// </summary>
public sealed class TransportTests
{
    [Theory]
    [MemberData(nameof(LoopThreads))]
    public async Task A_stopped_subscriber_holds_the_publisher_back_and_then_gets_everything(int mqttThreads)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var host = await StartAsync(mqttThreads);
        var topic = TrellisHost.Unique("transport/");
        var payload = Path.Combine(host.DataDirectory, "payload.bin");
        await File.WriteAllBytesAsync(payload, Enumerable.Range(0, 16 * 1024).Select(i => (byte)i).ToArray(), ct);

        // 3000 x 16 KiB = 48 MiB: more than the subscriber's queue (1000 messages), the sockets'
        // buffers and the publisher's input pipe together, so the publisher must be slowed down.
        const int count = 3000;
        using var subscriber = Start("mosquitto_sub", [.. host.AdminArgs(TrellisHost.Unique("sub")), "-t", topic, "-q", "1", "-C", count.ToString(CultureInfo.InvariantCulture), "-F", "%l"]);
        var lengths = new List<string>();
        subscriber.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (lengths)
                {
                    lengths.Add(e.Data);
                }
            }
        };
        subscriber.BeginOutputReadLine();
        await host.WaitSubscribersAsync(topic);

        Signal("STOP", subscriber);
        using var publisher = Start("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("pub")), "-t", topic, "-q", "1", "-f", payload, "--repeat", count.ToString(CultureInfo.InvariantCulture)]);

        // Held back: the broker stops taking the publisher's messages (its count stands still short
        // of the whole burst, with the publisher still running), not merely "not done after a while".
        var metrics = host.Server.Broker.Metrics;
        long last = -1, stalledSince = Environment.TickCount64;
        var heldBack = await Eventually.TrueAsync(() =>
        {
            var now = metrics.MessagesReceived;
            if (now != last)
            {
                (last, stalledSince) = (now, Environment.TickCount64);
            }

            return now > 0 && now < count && Environment.TickCount64 - stalledSince > 1000 && !publisher.HasExited;
        }, TimeSpan.FromSeconds(60), ct);
        Signal("CONT", subscriber);

        try
        {
            await publisher.WaitForExitAsync(ct).WaitAsync(TimeSpan.FromSeconds(60), ct);
            await subscriber.WaitForExitAsync(ct).WaitAsync(TimeSpan.FromSeconds(60), ct);
        }
        finally
        {
            publisher.Kill();
            subscriber.Kill();
        }

        Assert.True(heldBack, "the publisher finished 48 MiB while its subscriber was stopped: nothing held it back");
        Assert.Equal(0, publisher.ExitCode);
        lock (lengths)
        {
            Assert.Equal(count, lengths.Count);
            Assert.All(lengths, l => Assert.Equal("16384", l));
        }

        Assert.Equal(0, host.Server.Broker.Metrics.MessagesDropped);
    }

    [Theory]
    [MemberData(nameof(LoopThreads))]
    public async Task A_client_that_publishes_and_closes_at_once_is_served_and_closed(int mqttThreads)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var host = await StartAsync(mqttThreads);
        var user = host.Server.AccessKeys.AdminAccessKeyId;
        var topic = TrellisHost.Unique("fin/");
        const int attempts = 20;
        using var subscriber = ExternalTool.StartBackground("mosquitto_sub", [.. host.AdminArgs(TrellisHost.Unique("sub")), "-t", topic, "-C", attempts.ToString(CultureInfo.InvariantCulture)]);
        await host.WaitSubscribersAsync(topic, peer: subscriber);
        for (var i = 0; i < attempts; i++)
        {
            using var raw = await RawMqtt.ConnectAsync(host.MqttPort, ct);
            await raw.SendAsync(RawMqtt.Connect(TrellisHost.Unique("fin"), user, host.Server.AccessKeys.SecretFor(user)), ct);
            await raw.ReadPacketAsync(TimeSpan.FromSeconds(5), ct); // CONNACK

            // A PUBLISH and the FIN back to back usually arrive as one readiness event: the broker must
            // handle the publish and see the close (no further event will tell it).
            await raw.SendAsync(RawMqtt.Publish(System.Text.Encoding.UTF8.GetBytes(topic), System.Text.Encoding.UTF8.GetBytes($"m{i}")), ct);
            raw.ShutdownSend();
            var (_, closed) = await raw.ReadUntilClosedAsync(TimeSpan.FromSeconds(5), ct);
            Assert.True(closed, $"attempt {i}: the broker did not close a connection whose client had closed");
        }

        Assert.True(await Eventually.TrueAsync(() => subscriber.Lines.Count == attempts, TimeSpan.FromSeconds(10), ct), $"subscriber got {subscriber.Lines.Count} of {attempts}");
        Assert.Equal(Enumerable.Range(0, attempts).Select(i => $"m{i}"), subscriber.Lines);
    }

    /// <summary>0: the .NET socket engine; 1 and 2: the broker's own epoll loops.</summary>
    public static TheoryData<int> LoopThreads => [0, 1, 2];

    private static async Task<ThreadsHost> StartAsync(int mqttThreads)
    {
        var host = new ThreadsHost(mqttThreads);
        await host.InitializeAsync();
        return host;
    }

    private static Process Start(string tool, IEnumerable<string> args)
    {
        var info = new ProcessStartInfo(ExternalTool.Resolve(tool)) { RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        return Process.Start(info) ?? throw new InvalidOperationException($"could not start {tool}");
    }

    private static void Signal(string signal, Process process)
    {
        using var kill = Process.Start("kill", ["-" + signal, process.Id.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    // The stopped subscriber is never judged stalled while the test looks (on a loaded machine its
    // 1 s still stretch could otherwise outlast the default 2 s stall and let the publisher go on).
    private sealed class ThreadsHost(int threads) : TrellisHost(false, b => (b.EventLoops, b.SubscriberStallSeconds) = (threads, 120));
}
