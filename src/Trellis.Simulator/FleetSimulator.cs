using System.Collections.Concurrent;
using System.Text;
using System.Text.Json.Nodes;
using Trellis.Device;

namespace Trellis.Simulator;

/// <summary>What a running fleet has done so far (read by the live view and the summary).</summary>
public sealed class FleetStats
{
    private long _connected;
    private long _messages;
    private long _errors;
    private long _reconnects;
    private long _shadowUpdates;
    private long _jobs;

    public long Connected => Interlocked.Read(ref _connected);

    public long Messages => Interlocked.Read(ref _messages);

    public long Errors => Interlocked.Read(ref _errors);

    public long Reconnects => Interlocked.Read(ref _reconnects);

    public long ShadowUpdates => Interlocked.Read(ref _shadowUpdates);

    public long JobsCompleted => Interlocked.Read(ref _jobs);

    /// <summary>The most recent error of each kind, with how often it happened.</summary>
    public ConcurrentDictionary<string, long> ErrorKinds { get; } = new(StringComparer.Ordinal);

    public long PeakConnected { get; private set; }

    internal void Online()
    {
        var now = Interlocked.Increment(ref _connected);
        if (now > PeakConnected)
        {
            PeakConnected = now;
        }
    }

    internal void Offline() => Interlocked.Decrement(ref _connected);

    internal void Sent() => Interlocked.Increment(ref _messages);

    internal void Reconnected() => Interlocked.Increment(ref _reconnects);

    internal void ShadowApplied() => Interlocked.Increment(ref _shadowUpdates);

    internal void JobDone() => Interlocked.Increment(ref _jobs);

    internal void Failed(Exception e)
    {
        Interlocked.Increment(ref _errors);
        var kind = e.GetType().Name + ": " + (e.Message.Length > 120 ? e.Message[..120] : e.Message);
        ErrorKinds.AddOrUpdate(kind, 1, (_, n) => n + 1);
    }
}

/// <summary>
/// Runs a fleet: each device connects with its own certificate (through the device SDK), reports
/// its state, follows its shadow's desired state, publishes its samples on
/// <c>devices/{thing}/telemetry</c> at QoS 1 at its sampling interval, and runs the jobs sent to it
/// (started, then SUCCEEDED). Intermittent devices drop off now and then and come back. A device
/// whose connection fails retries with back-off; errors are counted, never fatal to the fleet.
/// </summary>
public sealed class FleetSimulator(IReadOnlyList<(SimulatedDevice Device, DeviceOptions Identity)> fleet)
{
    private static readonly SemaphoreSlim Connecting = new(32, 32);

    public FleetStats Stats { get; } = new();

    public Task RunAsync(CancellationToken ct) => Task.WhenAll(fleet.Select(d => RunDeviceAsync(d.Device, d.Identity, ct)));

    private async Task RunDeviceAsync(SimulatedDevice device, DeviceOptions identity, CancellationToken ct)
    {
        var random = new Random(device.Thing.GetHashCode(StringComparison.Ordinal));
        var backoff = TimeSpan.FromSeconds(1);
        var first = true;
        while (!ct.IsCancellationRequested)
        {
            TrellisDevice? connection = null;
            var offline = TimeSpan.Zero;
            try
            {
                await Connecting.WaitAsync(ct);
                try
                {
                    connection = await TrellisDevice.ConnectAsync(identity, ct);
                }
                finally
                {
                    Connecting.Release();
                }

                Stats.Online();
                if (!first)
                {
                    Stats.Reconnected();
                }

                first = false;
                backoff = TimeSpan.FromSeconds(1);
                offline = await RunConnectedAsync(device, connection, random, ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                Stats.Failed(e);
                await Task.Delay(backoff, ct).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
            }
            finally
            {
                if (connection is not null)
                {
                    Stats.Offline();
                    await connection.DisposeAsync();
                }
            }

            // Out of range for a while (intermittent devices): then the connection comes back.
            await Task.Delay(offline, ct).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    /// <summary>One connected stretch; returns how long to stay away when an intermittent device drops off.</summary>
    private async Task<TimeSpan> RunConnectedAsync(SimulatedDevice device, TrellisDevice connection, Random random, CancellationToken ct)
    {
        var shadow = connection.Shadow();
        shadow.OnDelta(delta =>
        {
            var applied = device.Apply(delta);
            Stats.ShadowApplied();
            return applied;
        });
        await shadow.StartAsync(ct);
        await shadow.ReportAsync(device.Reported(), ct);

        var jobs = connection.Jobs();
        var running = 0;
        jobs.NextChanged += async next =>
        {
            if (next is null || Interlocked.Exchange(ref running, 1) == 1)
            {
                return;
            }

            try
            {
                if (await jobs.StartNextAsync(new JsonObject { ["step"] = "applying" }, cancellationToken: ct) is { } job)
                {
                    await Task.Delay(TimeSpan.FromSeconds(1), ct);
                    await jobs.UpdateAsync(job.JobId, "SUCCEEDED", new JsonObject { ["result"] = "simulated" }, cancellationToken: ct);
                    Stats.JobDone();
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException && !ct.IsCancellationRequested)
            {
                Stats.Failed(e);
            }
            finally
            {
                Volatile.Write(ref running, 0);
            }
        };
        await jobs.StartAsync(ct);

        // Devices start spread over their first interval, not all at once.
        await Task.Delay(random.Next(0, device.IntervalMs), ct);
        var topic = $"devices/{device.Thing}/telemetry";
        while (!ct.IsCancellationRequested)
        {
            var sample = device.Sample(DateTimeOffset.UtcNow);
            sample["timestamp"] = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            await connection.PublishAsync(topic, Encoding.UTF8.GetBytes(sample.ToJsonString()), 1, ct);
            Stats.Sent();
            if (device.Intermittent && random.NextDouble() < 0.01)
            {
                return TimeSpan.FromSeconds(random.Next(5, 20));
            }

            await Task.Delay(device.IntervalMs, ct);
        }

        return TimeSpan.Zero;
    }
}
