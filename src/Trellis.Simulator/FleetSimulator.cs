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
/// Firmware updates in a simulated fleet: the signer certificate the devices verify images against,
/// and the folder where each device keeps its OTA agent's state and the version it runs.
/// </summary>
public sealed record OtaSetup(System.Security.Cryptography.X509Certificates.X509Certificate2 Signer, string StateDirectory);

/// <summary>
/// Devices of the fleet that talk CoAP instead of MQTT: the server's plain CoAP endpoint and each
/// such device's token (its thing name → token).
/// </summary>
public sealed record CoapSetup(System.Net.IPEndPoint Server, IReadOnlyDictionary<string, string> Tokens);

/// <summary>
/// Runs a fleet: each device connects with its own certificate (through the device SDK), reports
/// its state, follows its shadow's desired state, publishes its samples on
/// <c>devices/{thing}/telemetry</c> at QoS 1 at its sampling interval, and runs the jobs sent to it
/// (started, then SUCCEEDED; a firmware job through the device SDK's OTA agent: downloaded,
/// verified, "installed", the device restarts, reports the new version and the job SUCCEEDED).
/// Intermittent devices drop off now and then and come back. A device
/// whose connection fails retries with back-off; errors are counted, never fatal to the fleet.
/// </summary>
public sealed class FleetSimulator(IReadOnlyList<(SimulatedDevice Device, DeviceOptions Identity)> fleet, OtaSetup? ota = null, CoapSetup? coap = null)
{
    private static readonly SemaphoreSlim Connecting = new(32, 32);

    public FleetStats Stats { get; } = new();

    public Task RunAsync(CancellationToken ct) => Task.WhenAll(fleet.Select(d => coap is not null && coap.Tokens.TryGetValue(d.Device.Thing, out var token)
        ? RunCoapDeviceAsync(d.Device, token, ct)
        : RunDeviceAsync(d.Device, d.Identity, ct)));

    /// <summary>
    /// A constrained device on CoAP: it reports its shadow, POSTs its samples to
    /// <c>/topics/devices/{thing}/telemetry</c> (confirmable, at QoS 1), and every tenth sample reads
    /// its shadow to follow a desired <c>samplingIntervalMs</c> (polling: no connection to keep).
    /// </summary>
    private async Task RunCoapDeviceAsync(SimulatedDevice device, string token, CancellationToken ct)
    {
        var random = new Random(device.Thing.GetHashCode(StringComparison.Ordinal));
        using var link = new CoapLink(coap!.Server, device.Thing, token);
        var shadowPath = $"things/{device.Thing}/shadow";
        var topicPath = $"topics/devices/{device.Thing}/telemetry";
        var backoff = TimeSpan.FromSeconds(1);
        var online = false;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                try
                {
                    await ExpectAsync(link.RequestAsync(Trellis.Coap.CoapCode.Post, shadowPath, Json(new JsonObject { ["state"] = new JsonObject { ["reported"] = device.Reported() } }), ct), "report its shadow");
                    if (!online)
                    {
                        Stats.Online();
                        online = true;
                    }

                    await Task.Delay(random.Next(0, device.IntervalMs), ct);
                    for (var n = 1; !ct.IsCancellationRequested; n++)
                    {
                        var sample = device.Sample(DateTimeOffset.UtcNow);
                        sample["timestamp"] = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                        await ExpectAsync(link.RequestAsync(Trellis.Coap.CoapCode.Post, topicPath, Json(sample), ct, ("qos", "1")), "publish");
                        Stats.Sent();
                        if (n % 10 == 0)
                        {
                            var shadow = await link.RequestAsync(Trellis.Coap.CoapCode.Get, shadowPath, ReadOnlyMemory<byte>.Empty, ct);
                            if (shadow.Success && JsonNode.Parse(shadow.Payload.Span)?["state"]?["delta"] is JsonObject delta)
                            {
                                var applied = device.Apply(delta);
                                Stats.ShadowApplied();
                                await ExpectAsync(link.RequestAsync(Trellis.Coap.CoapCode.Post, shadowPath, Json(new JsonObject { ["state"] = new JsonObject { ["reported"] = applied } }), ct), "report its shadow");
                            }
                        }

                        backoff = TimeSpan.FromSeconds(1);
                        await Task.Delay(device.IntervalMs, ct);
                    }
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    backoff = await FailedAsync(e, backoff, ct);
                }
            }
        }
        finally
        {
            if (online)
            {
                Stats.Offline();
            }
        }

        static byte[] Json(JsonObject body) => Encoding.UTF8.GetBytes(body.ToJsonString());

        static async Task ExpectAsync(Task<CoapAnswer> request, string what)
        {
            var answer = await request;
            if (!answer.Success)
            {
                throw new IOException($"CoAP {what}: {answer}");
            }
        }
    }

    private async Task RunDeviceAsync(SimulatedDevice device, DeviceOptions identity, CancellationToken ct)
    {
        var random = new Random(device.Thing.GetHashCode(StringComparison.Ordinal));
        if (ota is not null && File.Exists(VersionFile(device)))
        {
            device.Firmware = (await File.ReadAllTextAsync(VersionFile(device), ct)).Trim();
        }

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
                backoff = await FailedAsync(e, backoff, ct);
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

    /// <summary>Counts a device's failure, waits <paramref name="backoff"/> and returns the next one (doubling, at most 30 s).</summary>
    private async Task<TimeSpan> FailedAsync(Exception e, TimeSpan backoff, CancellationToken ct)
    {
        Stats.Failed(e);
        await Task.Delay(backoff, ct).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        return TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
    }

    private string VersionFile(SimulatedDevice device) => Path.Combine(ota!.StateDirectory, device.Thing, "firmware-version");

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
        var restart = 0;
        using var agent = ota is null ? null : new Trellis.Device.Ota.OtaAgent(connection, new Trellis.Device.Ota.OtaOptions
        {
            StateDirectory = Path.Combine(ota.StateDirectory, device.Thing),
            SignerCertificate = ota.Signer,
            CurrentVersion = device.Firmware,
            InstallAsync = async (update, token) =>
            {
                // "Flashing": the new version is what boots after the restart.
                await File.WriteAllTextAsync(VersionFile(device), update.Version ?? device.Firmware, token);
                Volatile.Write(ref restart, 1);
            },
        });
        if (agent is not null)
        {
            agent.Finished += (_, status, _) =>
            {
                if (status == "SUCCEEDED")
                {
                    Stats.JobDone();
                }
            };
        }

        jobs.NextChanged += async next =>
        {
            if (next is null || Interlocked.Exchange(ref running, 1) == 1)
            {
                return;
            }

            try
            {
                if (agent is not null && Trellis.Device.Ota.OtaAgent.IsOtaJob(next))
                {
                    await agent.RunAsync(ct);
                }
                else if (await jobs.StartNextAsync(new JsonObject { ["step"] = "applying" }, cancellationToken: ct) is { } job)
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
        if (agent is not null)
        {
            await agent.SettleAsync(ct); // an update installed before the restart: SUCCEEDED now that it runs
        }

        // Devices start spread over their first interval, not all at once.
        await Task.Delay(random.Next(0, device.IntervalMs), ct);
        var topic = $"devices/{device.Thing}/telemetry";
        while (!ct.IsCancellationRequested)
        {
            var sample = device.Sample(DateTimeOffset.UtcNow);
            sample["timestamp"] = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            await connection.PublishAsync(topic, Encoding.UTF8.GetBytes(sample.ToJsonString()), 1, ct);
            Stats.Sent();
            if (Volatile.Read(ref restart) == 1)
            {
                // Restart into the new firmware: it boots, reconnects and reports the version.
                device.Firmware = (await File.ReadAllTextAsync(VersionFile(device), ct)).Trim();
                return TimeSpan.FromSeconds(1);
            }

            if (device.Intermittent && random.NextDouble() < 0.01)
            {
                return TimeSpan.FromSeconds(random.Next(5, 20));
            }

            await Task.Delay(device.IntervalMs, ct);
        }

        return TimeSpan.Zero;
    }
}
