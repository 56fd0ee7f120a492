using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Trellis.Broker;
using Trellis.Rules;
using Trellis.Telemetry;

namespace Trellis.Server;

/// <summary>
/// <c>GET /metrics</c> in the Prometheus text format, so a scraper needs no SigV4. The same
/// counters are published on the <c>Trellis.Broker</c> meter for OpenTelemetry.
/// </summary>
public static class MetricsEndpoint
{
    public static IEndpointConventionBuilder MapTrellisMetrics(this IEndpointRouteBuilder app) =>
        app.MapGet("/metrics", (MqttBroker broker, RuleEngine rules, TelemetryStore telemetry, Trellis.Rules.Outbox outbox, Trellis.Fleet.FleetIndex index) =>
        {
            var m = broker.Metrics;
            var text = new StringBuilder();
            Append(text, "trellis_broker_messages_received_total", "counter", "PUBLISH packets received from clients", m.MessagesReceived);
            Append(text, "trellis_broker_messages_sent_total", "counter", "PUBLISH packets written to clients", m.MessagesSent);
            Append(text, "trellis_broker_messages_dropped_total", "counter", "Deliveries dropped because a client's queue was full", m.MessagesDropped);
            Append(text, "trellis_broker_publishes_denied_total", "counter", "PUBLISH packets refused by policy", m.DeniedPublishes);
            Append(text, "trellis_broker_connections", "gauge", "Open MQTT connections", m.Connections);
            Append(text, "trellis_broker_sessions", "gauge", "MQTT sessions, connected or persisted", broker.SessionCount);
            Append(text, "trellis_broker_retained_messages", "gauge", "Retained messages", broker.RetainedCount);
            Append(text, "trellis_broker_sweeps_total", "counter", "Runs of the broker's once-a-second sweep (timeouts, expired sessions)", broker.Sweeps);
            Append(text, "trellis_broker_journal_commits_total", "counter", "Transactions of the persistent-session journal (sessions.db)", broker.JournalCommits);
            Append(text, "trellis_broker_journal_rows_total", "counter", "Rows the persistent-session journal wrote or deleted (a message acknowledged before its commit costs none)", broker.JournalRows);
            Append(text, "trellis_rules_queued", "gauge", "Messages waiting for the rules engine", rules.QueueLength);
            Append(text, "trellis_rules_held_back_total", "counter", "Client publishes whose acknowledgement waited because the rules queue was full", rules.HeldBack);
            Append(text, "trellis_rules_matched_total", "counter", "Messages that matched at least one rule", rules.Matched);
            Append(text, "trellis_rules_failed_actions_total", "counter", "Rule actions that failed", rules.FailedActions);
            Append(text, "trellis_rules_outbox_waiting", "gauge", "Messages in the durable outbox waiting for an external target (HTTP, NATS, Kafka)", outbox.Targets().Sum(outbox.Waiting));
            Append(text, "trellis_telemetry_points_written_total", "counter", "Points committed to the time-series store", telemetry.Written);
            Append(text, "trellis_telemetry_points_queued", "gauge", "Points waiting for the time-series store's writer", telemetry.Pending);
            Append(text, "trellis_telemetry_engine_memory_bytes", "gauge", "Memory held by the time-series store's engine (DuckDB)", telemetry.EngineMemoryBytes());
            Append(text, "trellis_fleet_index_documents", "gauge", "Things in the fleet index (0 while indexing is off)", index.Documents);
            Append(text, "trellis_fleet_index_pending", "gauge", "Things whose changes wait for the fleet indexer", index.Pending);
            Append(text, "trellis_fleet_index_changes_total", "counter", "Thing changes the fleet index applied", index.IndexedChanges);
            var (buckets, sum, count) = index.Lag.Snapshot();
            text.Append("# HELP trellis_fleet_index_lag_seconds From a change in the registry, a shadow or connectivity to its thing being searchable\n# TYPE trellis_fleet_index_lag_seconds histogram\n");
            foreach (var (bound, cumulative) in buckets)
            {
                text.Append(CultureInfo.InvariantCulture, $"trellis_fleet_index_lag_seconds_bucket{{le=\"{bound}\"}} {cumulative}\n");
            }

            text.Append(CultureInfo.InvariantCulture, $"trellis_fleet_index_lag_seconds_sum {sum:0.######}\ntrellis_fleet_index_lag_seconds_count {count}\n");
            var gc = GC.GetGCMemoryInfo();
            Append(text, "dotnet_gc_heap_bytes", "gauge", "Managed heap size after the last garbage collection", gc.HeapSizeBytes);
            Append(text, "dotnet_gc_allocated_bytes_total", "counter", "Bytes allocated on the managed heap since start", GC.GetTotalAllocatedBytes());
            text.Append("# HELP dotnet_gc_collections_total Garbage collections since start, by generation\n# TYPE dotnet_gc_collections_total counter\n");
            for (var generation = 0; generation <= GC.MaxGeneration; generation++)
            {
                text.Append(CultureInfo.InvariantCulture, $"dotnet_gc_collections_total{{generation=\"{generation}\"}} {GC.CollectionCount(generation)}\n");
            }

            AppendSeconds(text, "dotnet_gc_pause_seconds_total", "counter", "Time the runtime was paused for garbage collection since start", GC.GetTotalPauseDuration());
            Append(text, "process_working_set_bytes", "gauge", "Resident memory of the process", Environment.WorkingSet);
            return Results.Text(text.ToString(), "text/plain; version=0.0.4");
        });

    private static void AppendSeconds(StringBuilder text, string name, string type, string help, TimeSpan value) =>
        text.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} {type}\n{name} {value.TotalSeconds:0.######}\n");

    private static void Append(StringBuilder text, string name, string type, string help, long value) =>
        text.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} {type}\n{name} {value}\n");
}
