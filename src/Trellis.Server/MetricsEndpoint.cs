using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using Trellis.Broker;
using Trellis.Rules;
using Trellis.Telemetry;

namespace Trellis.Server;

/// <summary>
/// Trellis's metrics through System.Diagnostics.Metrics, exported by OpenTelemetry: scraped by
/// Prometheus at <c>GET /metrics</c> (no SigV4), and pushed over OTLP when
/// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set. The meters: <c>Trellis.Broker</c> (the broker's own
/// counters), <c>Trellis.Fleet</c> (index lag), <c>Trellis.Server</c> (below: what the stores and
/// engines hold), and the runtime's <c>System.Runtime</c> (GC, memory, threads).
/// </summary>
public static class MetricsEndpoint
{
    public const string ServerMeter = "Trellis.Server";

    /// <summary>Registers the meters and the exporters: Prometheus always, OTLP when its endpoint is configured.</summary>
    public static void AddTrellisMetrics(this IServiceCollection services)
    {
        var otlp = Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT") is { Length: > 0 }
            || Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") is { Length: > 0 };
        services.AddMetrics();
        services.AddSingleton<ServerMetrics>();
        services.AddOpenTelemetry().WithMetrics(metrics =>
        {
            metrics.AddMeter("Trellis.Broker", "Trellis.Fleet", ServerMeter, "System.Runtime")
                .AddPrometheusExporter(o => o.DisableTotalNameSuffixForCounters = false);
            ((IDeferredMeterProviderBuilder)metrics).Configure((provider, builder) =>
            {
                var own = provider.GetRequiredService<IMeterFactory>();
                builder.AddView(instrument => StreamOf(instrument, own));
            });
            if (otlp)
            {
                // Protocol, headers and interval from the standard OTEL_EXPORTER_OTLP_* and OTEL_METRIC_EXPORT_INTERVAL variables.
                metrics.AddOtlpExporter();
            }
        });
    }

    /// <summary>
    /// Most series Trellis exports have no attribute or a handful of values (an outbox target, a TLS
    /// refusal's reason, a GC generation). OpenTelemetry's default of 2,000 points per metric made it
    /// hold 50 arrays of 144 KB (7 MB) from start; past this many, new combinations are summed into
    /// OpenTelemetry's overflow series rather than lost.
    /// </summary>
    internal const int SeriesPerMetric = 200;

    /// <summary>
    /// One view for every instrument (two views matching one instrument would export it twice): the
    /// series limit, the fleet-index lag's buckets, and plural names for the runtime's counts.
    /// Instruments whose meter another server in the same process made (with its factory, not
    /// <paramref name="own"/>) are dropped: OpenTelemetry matches meters by name, and would otherwise
    /// merge both servers' counters into one series and end it when either server stops.
    /// </summary>
    private static MetricStreamConfiguration StreamOf(Instrument instrument, IMeterFactory own)
    {
        if (instrument.Meter.Scope is IMeterFactory owner && !ReferenceEquals(owner, own))
        {
            return MetricStreamConfiguration.Drop;
        }

        if (instrument.Name == "trellis.fleet.index.lag")
        {
            return new ExplicitBucketHistogramConfiguration { Boundaries = [.. Trellis.Fleet.LagHistogram.Bounds], CardinalityLimit = SeriesPerMetric };
        }

        return instrument.Meter.Name == "System.Runtime" && instrument.Name.EndsWith(".count", StringComparison.Ordinal)
            ? new MetricStreamConfiguration { Name = RuntimeName(instrument.Name), CardinalityLimit = SeriesPerMetric }
            : new MetricStreamConfiguration { CardinalityLimit = SeriesPerMetric };
    }

    /// <summary>
    /// The runtime's gauges named <c>….count</c> become <c>…_count</c> in Prometheus, which its lint
    /// reserves for histograms and summaries: they are exported under plural names instead.
    /// </summary>
    private static string RuntimeName(string name) => name switch
    {
        "dotnet.assembly.count" => "dotnet.assemblies",
        "dotnet.process.cpu.count" => "dotnet.process.cpus",
        "dotnet.thread_pool.thread.count" => "dotnet.thread_pool.threads",
        "dotnet.timer.count" => "dotnet.timers",
        _ => name[..^".count".Length] + ".number",
    };

    public static IEndpointConventionBuilder MapTrellisMetrics(this Microsoft.AspNetCore.Builder.WebApplication app)
    {
        _ = app.Services.GetRequiredService<ServerMetrics>(); // its instruments exist before the first scrape
        return app.MapPrometheusScrapingEndpoint("/metrics");
    }
}

/// <summary>The <c>Trellis.Server</c> meter: observable instruments over what the broker, rules, stores and monitoring hold.</summary>
internal sealed class ServerMetrics : IDisposable
{
    private readonly Meter _meter;

    public ServerMetrics(IMeterFactory meters, MqttBroker broker, RuleEngine rules, TelemetryStore telemetry, Outbox outbox, Trellis.Fleet.FleetIndex index,
        Trellis.Fleet.Defender.Defender defender, Trellis.Rules.Alarms.AlarmEngine alarms, Trellis.Rules.Notifications.Notifier notifier)
    {
        _meter = meters.Create(MetricsEndpoint.ServerMeter);
        Gauge("trellis.broker.sessions", () => broker.SessionCount, "MQTT sessions, connected or persisted");
        Gauge("trellis.broker.retained_messages", () => broker.RetainedCount, "Retained messages");
        Counter("trellis.broker.sweeps", () => broker.Sweeps, "Runs of the broker's once-a-second sweep (timeouts, expired sessions)");
        Counter("trellis.broker.journal.commits", () => broker.JournalCommits, "Transactions of the persistent-session journal (sessions.db)");
        Counter("trellis.broker.journal.rows", () => broker.JournalRows, "Rows the persistent-session journal wrote or deleted (a message acknowledged before its commit costs none)");
        Gauge("trellis.rules.queued", () => rules.QueueLength, "Messages waiting for the rules engine");
        Counter("trellis.rules.held_back", () => rules.HeldBack, "Client publishes whose acknowledgement waited because the rules queue was full");
        Counter("trellis.rules.matched", () => rules.Matched, "Messages that matched at least one rule");
        Counter("trellis.rules.failed_actions", () => rules.FailedActions, "Rule actions that failed");
        Gauge("trellis.rules.outbox.waiting", () => outbox.Targets().Sum(outbox.Waiting), "Messages in the durable outbox waiting for an external target (HTTP, NATS, Kafka, notifications)");
        _meter.CreateObservableGauge("trellis.rules.outbox.depth",
            () => outbox.States().Where(t => t.Depth > 0).Select(t => new Measurement<long>(t.Depth, new KeyValuePair<string, object?>("target", t.Display))),
            description: "Messages waiting in the durable outbox, per target");
        _meter.CreateObservableGauge("trellis.rules.outbox.oldest_age",
            () => outbox.States().Where(t => t.OldestMs is not null).Select(t => new Measurement<double>(
                Math.Max(0, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - t.OldestMs!.Value) / 1000.0, new KeyValuePair<string, object?>("target", t.Display))),
            unit: "s", description: "Age of the oldest message waiting in the durable outbox, per target (it expires to the rule's errorAction at the outbox's maximum age)");
        Counter("trellis.telemetry.points_written", () => telemetry.Written, "Points committed to the time-series store");
        Gauge("trellis.telemetry.points_queued", () => telemetry.Pending, "Points waiting for the time-series store's writer");
        _meter.CreateObservableGauge("trellis.telemetry.engine.memory", telemetry.EngineMemoryBytes, "By", "Memory held by the time-series store's engine (DuckDB)");
        Gauge("trellis.fleet.index.documents", () => index.Documents, "Things in the fleet index (0 while indexing is off)");
        Gauge("trellis.fleet.index.pending", () => index.Pending, "Things whose changes wait for the fleet indexer");
        Counter("trellis.fleet.index.changes", () => index.IndexedChanges, "Thing changes the fleet index applied");
        Counter("trellis.defender.datapoints", () => defender.Datapoints, "Device Defender datapoints evaluated");
        Gauge("trellis.defender.clients", () => defender.Activity.Count, "Client ids whose activity Device Defender counts");
        Counter("trellis.alarms.evaluated", () => alarms.Evaluated, "Messages the alarm models evaluated");
        Counter("trellis.alarms.dropped", () => alarms.Dropped, "Messages the alarms skipped because their queue was full");
        Counter("trellis.notifications.sent", () => notifier.Sent, "Notifications handed to a target (published, or queued in the outbox)");
    }

    public void Dispose() => _meter.Dispose();

    private void Gauge(string name, Func<long> value, string description) => _meter.CreateObservableGauge(name, value, description: description);

    private void Counter(string name, Func<long> value, string description) => _meter.CreateObservableCounter(name, value, description: description);
}
