using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text.Json;
using Trellis.LoadGen;

// trellis-loadgen --name NAME[,NAME…] --port PORT[,PORT…] --pid PID[,PID…] --scenario fanin|fanout|p2p|overload|idle|shadow|shadow-store|provision|connect|telemetry-store|rules|ingest|coap
//                 [--qos 0|1] [--rates a,b,c] [--seconds 3] [--connections 10000] [--things 1000] [--thing-prefix bench-thing-] [--in-flight 1000]
//   several brokers: the ladder scenarios (fanin, fanout, p2p) measure them in turns at each rate
//                 [--pairs 500] (p2p; any other number of pairs is reported as scenario p2p-N)
//                 [--lockstep] (all publishers' messages due at the same instant; reported as SCENARIO-lockstep)
//                 [--persistent] (subscribers connect with clean session 0; reported as SCENARIO-persistent)
//                 [--trace FILE] (ladders: one line per counted message: send time, sequence, step, read time; Stopwatch ticks)
//                 [--max-steal 2] (a ladder step during which the host's steal time exceeded this % is measured again, up to 3 attempts)
//   provision: --devices N --concurrency C --template T --serial-prefix P --out DIR --ca ca.pem --claim-cert F --claim-key F (port = TLS)
//   connect:   --auth token|cert --tokens tokens.tsv | --devices-dir DIR --concurrency C --ca ca.pem
var options = Args.Parse(args);
var scenarioName = (options.Scenario == "p2p" && options.Pairs != 500 ? $"p2p-{options.Pairs}" : options.Scenario) + (options.Lockstep ? "-lockstep" : "") + (options.Persistent ? "-persistent" : "");
var broker = new BrokerProcess(options.Pid);
using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(30));
var ct = cts.Token;

switch (options.Scenario)
{
    case "idle":
        await IdleAsync();
        break;
    case "overload":
        await OverloadAsync();
        break;
    case "shadow":
        await ShadowLadderAsync();
        break;
    case "shadow-store":
        await ShadowStoreBench.RunAsync(options.Things, options.InFlight, options.Seconds, Emit);
        break;
    case "session-journal":
        await JournalBench.RunAsync(options.InFlight, options.PayloadBytes, options.Seconds, Emit);
        break;
    case "provision":
        await ProvisioningBench.ProvisionAsync(args, broker, Emit, ct);
        break;
    case "connect":
        await ProvisioningBench.ConnectAsync(args, options.Name, broker, Emit, ct);
        break;
    case "ingest":
        await IngestBench.RunAsync(args, options.Name, options.Host, options.Port, broker, options.Rates, options.Seconds, Emit, ct);
        break;
    case "jobs":
        await JobsBench.RunAsync(args, options.Host, options.Port, broker, Emit, ct);
        break;
    case "index":
        await IndexBench.RunAsync(args, options.Host, options.Port, broker, Emit, ct);
        break;
    case "presence":
        await PresenceBench.RunAsync(args, options.Host, options.Port, broker, Emit, ct);
        break;
    case "coap":
        await CoapBench.RunAsync(args, options.Names[0], options.Host, options.Port, broker, options.Rates, options.Seconds, Emit, ct);
        break;
    case "ota":
        await OtaBench.RunAsync(args, options.Names[0], options.Host, options.Port, broker, Emit, ct);
        break;
    case "rules":
        await RulesBench.RunAsync(int.Parse(args.SkipWhile(a => a != "--messages").Skip(1).FirstOrDefault() ?? "1000000", CultureInfo.InvariantCulture), Emit);
        break;
    case "gateway":
        await GatewayBench.RunAsync(args, options.Names[0], Emit, ct);
        break;
    case "telemetry-store":
        await TelemetryStoreBench.RunAsync(options.Things, long.Parse(args.SkipWhile(a => a != "--points").Skip(1).FirstOrDefault() ?? "10000000", CultureInfo.InvariantCulture), Emit);
        break;
    default:
        await LadderAsync();
        break;
}

return 0;

async Task LadderAsync()
{
    // Several brokers (--name a,b --port p,q --pid x,y) climb the ladder together, taking turns at
    // each rate: their steps at one rate run seconds apart, under the same host conditions, where
    // one ladder after the other put minutes between them (this VM's steal comes and goes in
    // phases of minutes). Who goes first alternates from rate to rate.
    var targets = new List<LadderTarget>();
    for (var i = 0; i < options.Names.Length; i++)
    {
        var (publishers, subscribers, expectedPerMessage) = await SetUpAsync(options.Scenario, options.Ports[i]);
        targets.Add(new LadderTarget(options.Names[i], new BrokerProcess(options.Pids[i]), publishers, subscribers, expectedPerMessage));
    }

    // Warm-up (JIT, connection buffers) at the lowest rate; not reported.
    foreach (var t in targets)
    {
        await RunStepAsync(t.Process, t.Publishers, t.Subscribers, t.ExpectedPerMessage, options.Rates[0], -1, TimeSpan.FromSeconds(2));
    }

    var steal = new HostSteal();
    for (var r = 0; r < options.Rates.Length && targets.Any(t => t.Failures < 2); r++)
    {
        var rate = options.Rates[r];
        var turn = r % 2 == 0 ? targets : Enumerable.Reverse(targets).ToList();
        foreach (var t in turn.Where(t => t.Failures < 2))
        {
            // A step during which the hypervisor took more than --max-steal % of the CPU is measured
            // again (at most twice): the same rule for every broker, so that a busy host does not decide
            // a comparison. The attempts and the steal of the kept one are reported.
            StepResult result;
            double stealPct;
            var attempts = 0;
            do
            {
                attempts++;
                steal.SincePreviousPct();
                result = await RunStepAsync(t.Process, t.Publishers, t.Subscribers, t.ExpectedPerMessage, rate, ++t.Run, TimeSpan.FromSeconds(options.Seconds));
                stealPct = steal.SincePreviousPct();
            }
            while (stealPct > options.MaxStealPct && attempts < 3);

            Emit(new Dictionary<string, object?>
            {
                ["broker"] = t.Name,
                ["scenario"] = scenarioName,
                ["qos"] = options.Qos,
                ["offered"] = rate,
                ["sent"] = result.Sent,
                ["expected"] = result.Expected,
                ["received"] = result.Received,
                ["lossPct"] = result.LossPct,
                ["p50ms"] = result.P50,
                ["p99ms"] = result.P99,
                ["cpuPct"] = result.Cpu,
                ["rssMiB"] = result.Rss / 1024,
                ["stealPct"] = stealPct,
                ["attempts"] = attempts,
                ["step"] = t.Run, // the number written into the kept attempt's payloads (bench/hops.py joins on it)
                ["passed"] = result.Passed,
            });
            if (result.Passed)
            {
                t.Failures = 0;
                if (rate > t.Best.Rate)
                {
                    t.Best = (rate, result.P50, result.P99, result.Cpu, result.Rss);
                }
            }
            else
            {
                t.Failures++; // two failed steps in a row end this broker's ladder
            }
        }
    }

    foreach (var t in targets)
    {
        Emit(new Dictionary<string, object?>
        {
            ["summary"] = true,
            ["broker"] = t.Name,
            ["scenario"] = scenarioName,
            ["qos"] = options.Qos,
            ["zeroLossRate"] = t.Best.Rate,
            ["deliveriesPerSecond"] = t.Best.Rate * t.ExpectedPerMessage,
            ["p50ms"] = t.Best.Rate > 0 ? t.Best.P50 : null,
            ["p99ms"] = t.Best.Rate > 0 ? t.Best.P99 : null,
            ["cpuPct"] = t.Best.Cpu,
            ["rssMiB"] = t.Best.Rss / 1024,
        });
    }

    await cts.CancelAsync();
    if (options.Trace is { } tracePath)
    {
        await Task.Delay(200, CancellationToken.None); // the readers stop on the cancellation
        await using var trace = new StreamWriter(tracePath);
        foreach (var s in targets.SelectMany(t => t.Subscribers))
        {
            foreach (var (sentAt, sequence, messageStep, readAt) in s.Trace!)
            {
                await trace.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"{sentAt} {sequence} {messageStep} {readAt}"));
            }
        }
    }
}

async Task OverloadAsync()
{
    var (publishers, subscribers, expectedPerMessage) = await SetUpAsync("fanin", options.Port);
    var window = TimeSpan.FromSeconds(options.Seconds);
    foreach (var s in subscribers)
    {
        s.Reset(1);
    }

    broker.CpuNanoseconds();
    var started = Stopwatch.GetTimestamp();
    await Task.WhenAll(publishers.Select(p => p.RunUnthrottledAsync(window, 1, ct)));
    var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
    var deliveredInWindow = subscribers.Sum(s => Interlocked.Read(ref s.Received));
    var cpu = broker.CpuNanoseconds() / (elapsed * 1e7);
    var sent = publishers.Sum(p => Interlocked.Read(ref p.Sent));

    // Whatever the broker accepted must still arrive: wait as long as deliveries keep coming.
    await WaitForDrainAsync(subscribers, sent * expectedPerMessage, TimeSpan.FromSeconds(60));
    var received = subscribers.Sum(s => Interlocked.Read(ref s.Received));
    var histogram = Merge(subscribers);
    Emit(new Dictionary<string, object?>
    {
        ["summary"] = true,
        ["broker"] = options.Name,
        ["scenario"] = "overload",
        ["qos"] = options.Qos,
        ["acceptedPerSecond"] = Math.Round(sent / elapsed),
        ["deliveredPerSecond"] = Math.Round(deliveredInWindow / elapsed),
        ["lossPct"] = sent == 0 ? 0 : Math.Round(100.0 * (sent - received) / sent, 3),
        ["p50ms"] = histogram.PercentileMs(0.5),
        ["p99ms"] = histogram.PercentileMs(0.99),
        ["cpuPct"] = Math.Round(cpu),
        ["rssMiB"] = broker.RssKiB() / 1024,
    });
    await cts.CancelAsync();
}

async Task IdleAsync()
{
    var before = broker.RssKiB();
    var sockets = new List<Socket>(options.Connections);
    var prefix = $"idle-{Environment.ProcessId}-";

    // The first tenth is a warm-up: what the broker spends once (code compiled on first use, tables
    // sized up) shows between "before" and the warm-up; the growth from the warm-up to the full count
    // is what each further idle connection costs.
    var warmup = options.Connections / 10;
    long atWarmup = 0;
    for (var i = 0; i < options.Connections; i += 200)
    {
        // 20 000 connections per loopback source address (127.0.0.1, .2, …), well inside one address's ephemeral ports.
        var batch = Enumerable.Range(i, Math.Min(200, options.Connections - i))
            .Select(n => MqttWire.OpenAsync(options.Host, options.Port, prefix + n, ct, source: n < 20_000 ? null : new System.Net.IPAddress(new byte[] { 127, 0, 0, (byte)(1 + (n / 20_000)) })));
        sockets.AddRange(await Task.WhenAll(batch));
        if (atWarmup == 0 && sockets.Count >= warmup)
        {
            await Task.Delay(TimeSpan.FromSeconds(3), ct);
            atWarmup = broker.RssKiB();
        }
    }

    await Task.Delay(TimeSpan.FromSeconds(3), ct);
    var after = broker.RssKiB();

    // And once the server has settled (the JIT's tier-up done, the heap compacted after the burst
    // where the broker does that): what the connections cost while they stay idle.
    await Task.Delay(TimeSpan.FromSeconds(12), ct);
    var settled = broker.RssKiB();
    Emit(new Dictionary<string, object?>
    {
        ["summary"] = true,
        ["broker"] = options.Name,
        ["scenario"] = "idle",
        ["connections"] = sockets.Count,
        ["rssBeforeMiB"] = before / 1024,
        ["rssAfterMiB"] = after / 1024,
        ["kibPerConnection"] = Math.Round((after - before) / (double)sockets.Count, 2),
        ["marginalKibPerConnection"] = Math.Round((after - atWarmup) / (double)(sockets.Count - warmup), 2),
        ["rssSettledMiB"] = settled / 1024,
        ["kibPerConnectionSettled"] = Math.Round((settled - before) / (double)sockets.Count, 2),
    });
    foreach (var socket in sockets)
    {
        socket.Dispose();
    }
}

// Shadow updates across many things over MQTT: every update changes desired, so each accepted
// update yields one delta; the step passes when every delta arrives, nothing is rejected, and the
// update-to-delta p99 is under 50 ms.
async Task ShadowLadderAsync()
{
    var devices = new List<ShadowDevice>();
    for (var i = 0; i < options.Things; i++)
    {
        var thing = options.ThingPrefix + i;
        var socket = await MqttWire.OpenAsync(options.Host, options.Port, thing, ct);
        await MqttWire.SubscribeAsync(socket, $"$aws/things/{thing}/shadow/update/delta", 0, ct);
        await MqttWire.SubscribeAsync(socket, $"$aws/things/{thing}/shadow/update/rejected", 0, ct);
        var device = new ShadowDevice(socket, thing);
        devices.Add(device);
        _ = Task.Run(() => device.RunReaderAsync(ct), ct);
    }

    var best = (Rate: 0.0, P50: (double?)null, P99: (double?)null, Cpu: 0.0, Rss: 0L);
    var failures = 0;
    var step = 0;
    await ShadowStepAsync(devices, options.Rates[0], -1, TimeSpan.FromSeconds(2));
    foreach (var rate in options.Rates)
    {
        var r = await ShadowStepAsync(devices, rate, ++step, TimeSpan.FromSeconds(options.Seconds));
        Emit(new Dictionary<string, object?>
        {
            ["broker"] = options.Name,
            ["scenario"] = "shadow",
            ["things"] = devices.Count,
            ["offered"] = rate,
            ["sent"] = r.Sent,
            ["deltas"] = r.Deltas,
            ["rejected"] = r.Rejected,
            ["p50ms"] = r.P50,
            ["p99ms"] = r.P99,
            ["cpuPct"] = r.Cpu,
            ["rssMiB"] = r.Rss / 1024,
            ["passed"] = r.Passed,
        });
        if (r.Passed)
        {
            failures = 0;
            best = rate > best.Rate ? (rate, (double?)r.P50, (double?)r.P99, r.Cpu, r.Rss) : best;
        }
        else if (++failures >= 2)
        {
            break;
        }
    }

    Emit(new Dictionary<string, object?>
    {
        ["summary"] = true,
        ["broker"] = options.Name,
        ["scenario"] = "shadow",
        ["things"] = devices.Count,
        ["zeroLossRate"] = best.Rate,
        ["p50ms"] = best.P50,
        ["p99ms"] = best.P99,
        ["cpuPct"] = best.Cpu,
        ["rssMiB"] = best.Rss / 1024,
    });
    await cts.CancelAsync();
}

async Task<(long Sent, long Deltas, long Rejected, double P50, double P99, double Cpu, long Rss, bool Passed)> ShadowStepAsync(List<ShadowDevice> devices, double rate, int step, TimeSpan duration)
{
    foreach (var d in devices)
    {
        d.Reset(step);
    }

    broker.CpuNanoseconds();
    var started = Stopwatch.GetTimestamp();
    var perDevice = rate / devices.Count;
    var end = started + (long)(duration.TotalSeconds * Stopwatch.Frequency);
    while (Stopwatch.GetTimestamp() < end)
    {
        var due = perDevice * (Stopwatch.GetTimestamp() - started) / Stopwatch.Frequency;
        for (var i = 0; i < devices.Count; i++)
        {
            // Devices are phase-shifted (i/N of a period) so that low per-device rates spread evenly in time.
            var d = devices[i];
            var dueHere = (long)(due + ((double)i / devices.Count));
            var sent = Interlocked.Read(ref d.Sent);
            if (dueHere > sent)
            {
                await d.SendAsync((int)(dueHere - sent), sent, ct);
            }
        }

        await Task.Delay(1, ct);
    }

    var total = devices.Sum(d => Interlocked.Read(ref d.Sent));
    var deadline = Stopwatch.GetTimestamp() + (3 * Stopwatch.Frequency);
    while (devices.Sum(d => Interlocked.Read(ref d.Deltas) + Interlocked.Read(ref d.Rejected)) < total && Stopwatch.GetTimestamp() < deadline)
    {
        await Task.Delay(20, ct);
    }

    var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
    var cpu = broker.CpuNanoseconds() / (elapsed * 1e7);
    var histogram = new LatencyHistogram();
    foreach (var d in devices)
    {
        histogram.Merge(d.Histogram);
    }

    var deltas = devices.Sum(d => Interlocked.Read(ref d.Deltas));
    var rejected = devices.Sum(d => Interlocked.Read(ref d.Rejected));
    var p99 = histogram.PercentileMs(0.99);
    var offeredOk = total >= rate * duration.TotalSeconds * 0.97;
    return (total, deltas, rejected, histogram.PercentileMs(0.5), p99, Math.Round(cpu), broker.RssKiB(), deltas >= total && rejected == 0 && p99 < 50 && offeredOk);
}

async Task<(List<Publisher> Publishers, List<Subscriber> Subscribers, int ExpectedPerMessage)> SetUpAsync(string scenario, int port)
{
    var (pubCount, subCount, topicOf) = scenario switch
    {
        "fanin" => (20, 1, (Func<int, string>)(_ => "bench/fanin")),
        "fanout" => (1, 1000, _ => "bench/fanout"),
        "p2p" => (options.Pairs, options.Pairs, i => $"bench/p2p/{i}"),
        _ => throw new ArgumentException($"unknown scenario {scenario}"),
    };
    var run = $"{Environment.ProcessId}-{port}-{scenario}";
    var subscribers = new List<Subscriber>();
    for (var i = 0; i < subCount; i++)
    {
        var socket = await MqttWire.OpenAsync(options.Host, port, $"sub-{run}-{i}", ct, options.Persistent);
        await MqttWire.SubscribeAsync(socket, topicOf(i), (byte)options.Qos, ct);
        var subscriber = new Subscriber(socket, 0) { Trace = options.Trace is null ? null : [] };
        subscribers.Add(subscriber);
        _ = Task.Run(() => subscriber.RunAsync(ct), ct);
    }

    var publishers = new List<Publisher>();
    for (var i = 0; i < pubCount; i++)
    {
        var socket = await MqttWire.OpenAsync(options.Host, port, $"pub-{run}-{i}", ct);
        var publisher = new Publisher(socket, topicOf(i), (byte)options.Qos, options.PayloadBytes);
        publishers.Add(publisher);
        if (options.Qos > 0)
        {
            _ = Task.Run(() => publisher.DrainAcksAsync(ct), ct);
        }
    }

    await Task.Delay(500, ct);
    return (publishers, subscribers, scenario == "fanout" ? subCount : 1);
}

async Task<StepResult> RunStepAsync(BrokerProcess process, List<Publisher> publishers, List<Subscriber> subscribers, int expectedPerMessage, double rate, int step, TimeSpan duration)
{
    foreach (var s in subscribers)
    {
        s.Reset(step);
    }

    process.CpuNanoseconds();
    var started = Stopwatch.GetTimestamp();
    await PaceAsync(publishers, rate, duration, step);
    var sent = publishers.Sum(p => Interlocked.Read(ref p.Sent));
    var expected = sent * expectedPerMessage;
    await WaitForDrainAsync(subscribers, expected, TimeSpan.FromSeconds(3));
    var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
    var cpu = process.CpuNanoseconds() / (elapsed * 1e7);
    var received = subscribers.Sum(s => Interlocked.Read(ref s.Received));
    var histogram = Merge(subscribers);
    var loss = expected == 0 ? 0 : 100.0 * (expected - received) / expected;
    var p99 = histogram.PercentileMs(0.99);

    // The offered rate must actually have been offered: a generator that fell behind does not pass the step.
    var offeredOk = sent >= rate * duration.TotalSeconds * 0.97;
    return new StepResult(sent, expected, received, Math.Round(loss, 3), histogram.PercentileMs(0.5), p99, Math.Round(cpu), process.RssKiB(), received >= expected && p99 < 50 && offeredOk);
}

// One pacer for all publishers: every millisecond it sends what is due on each connection. A task
// per publisher (500 in point-to-point) would burn the generator's CPU on timer wake-ups, and that
// CPU is shared with the broker under test. Publisher i runs i/N of a period behind publisher 0, so
// the offered rate is spread evenly over time, as independent devices send. With --lockstep every
// publisher's message falls due at the same instant (at 10k msg/s over 500 publishers: a burst of
// 500 every 50 ms, sent at over 100k msg/s while it lasts), which is how the generator paced until
// 2026-11-28; the p2p-lockstep scenario keeps that stress case.
async Task PaceAsync(List<Publisher> publishers, double rate, TimeSpan duration, int step)
{
    foreach (var p in publishers)
    {
        Interlocked.Exchange(ref p.Sent, 0);
    }

    var perPublisher = rate / publishers.Count;
    var start = Stopwatch.GetTimestamp();
    var end = start + (long)(duration.TotalSeconds * Stopwatch.Frequency);
    while (true)
    {
        var now = Stopwatch.GetTimestamp();
        if (now >= end)
        {
            return;
        }

        var periods = perPublisher * (now - start) / Stopwatch.Frequency;
        for (var i = 0; i < publishers.Count; i++)
        {
            var p = publishers[i];
            var phase = options.Lockstep ? 0 : (double)i / publishers.Count;
            var sent = Interlocked.Read(ref p.Sent);
            var due = (long)(periods + phase) - sent;
            if (due > 0)
            {
                await p.SendAsync((int)Math.Min(due, int.MaxValue), sent, step, ct);
            }
        }

        await Task.Delay(1, ct);
    }
}

static async Task WaitForDrainAsync(List<Subscriber> subscribers, long expected, TimeSpan timeout)
{
    var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
    long last = -1;
    var stableSince = Stopwatch.GetTimestamp();
    while (Stopwatch.GetTimestamp() < deadline)
    {
        var received = subscribers.Sum(s => Interlocked.Read(ref s.Received));
        if (received >= expected)
        {
            return;
        }

        if (received != last)
        {
            last = received;
            stableSince = Stopwatch.GetTimestamp();
        }
        else if (Stopwatch.GetElapsedTime(stableSince) > TimeSpan.FromMilliseconds(750))
        {
            return;
        }

        await Task.Delay(20);
    }
}

static LatencyHistogram Merge(List<Subscriber> subscribers)
{
    var merged = new LatencyHistogram();
    foreach (var s in subscribers)
    {
        merged.Merge(s.Histogram);
    }

    return merged;
}

// NaN (no samples) and infinity (beyond the histogram) are written as null: JSON has neither.
static void Emit(Dictionary<string, object?> values) =>
    Console.WriteLine(JsonSerializer.Serialize(values.ToDictionary(v => v.Key, v => v.Value is double d && !double.IsFinite(d) ? null : v.Value)));

internal sealed record StepResult(long Sent, long Expected, long Received, double LossPct, double P50, double P99, double Cpu, long Rss, bool Passed);

internal sealed class LadderTarget(string name, BrokerProcess process, List<Publisher> publishers, List<Subscriber> subscribers, int expectedPerMessage)
{
    public string Name { get; } = name;

    public BrokerProcess Process { get; } = process;

    public List<Publisher> Publishers { get; } = publishers;

    public List<Subscriber> Subscribers { get; } = subscribers;

    public int ExpectedPerMessage { get; } = expectedPerMessage;

    /// <summary>Steps run so far, the number written into each step's payloads.</summary>
    public int Run { get; set; }

    /// <summary>Failed steps in a row; two end this broker's ladder.</summary>
    public int Failures { get; set; }

    public (double Rate, double P50, double P99, double Cpu, long Rss) Best { get; set; }
}

/// <summary>
/// Command-line options. --name, --port and --pid may list several brokers (comma-separated), which
/// ladder scenarios measure in turns; every other scenario uses the first.
/// </summary>
internal sealed record Args(string[] Names, string Host, int[] Ports, int[] Pids, string Scenario, int Qos, double[] Rates, double Seconds, int Connections, int PayloadBytes, int Things, string ThingPrefix, int InFlight, int Pairs, bool Lockstep, double MaxStealPct, string? Trace, bool Persistent)
{
    /// <summary>The first (or only) broker's name, port and process id.</summary>
    public string Name => Names[0];

    public int Port => Ports[0];

    public int Pid => Pids[0];

    public static Args Parse(string[] args)
    {
        string Get(string name, string fallback)
        {
            var i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
        }

        int[] Numbers(string name, string fallback) =>
            Get(name, fallback).Split(',').Select(n => int.Parse(n, CultureInfo.InvariantCulture)).ToArray();

        var names = Get("--name", "broker").Split(',');
        var ports = Numbers("--port", "1883");
        var pids = Numbers("--pid", "0");
        if (ports.Length != names.Length || pids.Length != names.Length)
        {
            throw new ArgumentException("--name, --port and --pid must list the same number of brokers");
        }

        return new Args(
            names,
            Get("--host", "127.0.0.1"),
            ports,
            pids,
            Get("--scenario", "fanin"),
            int.Parse(Get("--qos", "0"), CultureInfo.InvariantCulture),
            Get("--rates", "10000,20000,40000,60000,80000,100000,120000,140000,160000,180000,200000,250000,300000").Split(',').Select(r => double.Parse(r, CultureInfo.InvariantCulture)).ToArray(),
            double.Parse(Get("--seconds", "3"), CultureInfo.InvariantCulture),
            int.Parse(Get("--connections", "10000"), CultureInfo.InvariantCulture),
            int.Parse(Get("--payload", "64"), CultureInfo.InvariantCulture),
            int.Parse(Get("--things", "1000"), CultureInfo.InvariantCulture),
            Get("--thing-prefix", "bench-thing-"),
            int.Parse(Get("--in-flight", "1000"), CultureInfo.InvariantCulture),
            int.Parse(Get("--pairs", "500"), CultureInfo.InvariantCulture),
            args.Contains("--lockstep"),
            double.Parse(Get("--max-steal", "2"), CultureInfo.InvariantCulture),
            Get("--trace", "") is { Length: > 0 } trace ? trace : null,
            args.Contains("--persistent"));
    }
}
