using System.Globalization;
using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary>
/// Metrics through OpenTelemetry: the Prometheus scrape at /metrics passes Prometheus's own
/// `promtool check metrics` and carries the broker's, the stores', the fleet index's, Device
/// Defender's, the alarms' and the runtime's instruments; the same are pushed over OTLP (HTTP,
/// protobuf) to a receiver when OTEL_EXPORTER_OTLP_ENDPOINT is set.
/// </summary>
public sealed class MetricsTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly string _data = Path.Combine(Path.GetTempPath(), "trellis-metrics-" + Guid.NewGuid().ToString("N")[..8]);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task The_scrape_passes_promtool_and_the_same_metrics_are_pushed_over_otlp()
    {
        using var receiver = ExternalTool.StartBackground("/usr/bin/python3", [Path.Combine(AppContext.BaseDirectory, "Scripts", "receivers.py"), "0"]);
        Assert.True(await receiver.WaitForLineAsync(l => l.Contains("\"http\"", StringComparison.Ordinal), Timeout, Ct), receiver.Stderr);
        var port = JsonNode.Parse(receiver.Lines[0])!["http"]!.GetValue<int>();
        using var server = await ServerProcess.StartAsync(_data, Ct, new Dictionary<string, string>
        {
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = $"http://127.0.0.1:{port}",
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_METRIC_EXPORT_INTERVAL"] = "1000",
        });
        for (var i = 0; i < 3; i++)
        {
            await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. server.Anonymous("meter-" + i.ToString(CultureInfo.InvariantCulture)), "-t", "meters/x", "-m", "1", "-q", "1"], Timeout, cancellationToken: Ct);
        }

        // The fleet index's lag histogram appears once the index has applied a change.
        await server.IotCallsAsync([("update_indexing_configuration", new { thingIndexingConfiguration = new { thingIndexingMode = "REGISTRY" } }), ("create_thing", new { thingName = "meter-0" })], Ct);
        using var http = new HttpClient();
        var text = string.Empty;
        Assert.True(await Eventually.TrueAsync(async () =>
        {
            text = await http.GetStringAsync(server.Endpoint + "/metrics", Ct);
            return text.Contains("# TYPE trellis_fleet_index_lag_seconds histogram", StringComparison.Ordinal);
        }, Timeout, Ct), "no index lag histogram");
        var file = Path.Combine(Path.GetTempPath(), "trellis-metrics-" + Guid.NewGuid().ToString("N")[..8] + ".txt");
        await File.WriteAllTextAsync(file, text, Ct);
        try
        {
            var checkedMetrics = await ExternalTool.RunAsync("sh", ["-c", $"promtool check metrics < '{file}'"], Timeout, cancellationToken: Ct);
            Assert.True(checkedMetrics.ExitCode == 0, "promtool: " + checkedMetrics.Stdout + checkedMetrics.Stderr);
        }
        finally
        {
            File.Delete(file);
        }

        Assert.True(PrometheusText.Value(text, "trellis_broker_messages_received_total") >= 3, text);
        Assert.True(PrometheusText.Value(text, "trellis_broker_connections") >= 0);
        Assert.True(PrometheusText.Value(text, "trellis_defender_clients") >= 3, "each client's activity is counted");
        Assert.True(PrometheusText.Value(text, "trellis_fleet_index_lag_seconds_bucket", "le=\"+Inf\"") >= 1, "the lag histogram counts the change");
        foreach (var name in new[] { "trellis_rules_queued", "trellis_telemetry_engine_memory_bytes", "trellis_alarms_evaluated_total", "trellis_notifications_sent_total", "dotnet_gc_collections_total", "dotnet_process_memory_working_set_bytes" })
        {
            Assert.True(PrometheusText.Value(text, name) is not null, $"{name} is missing from /metrics");
        }

        // The OTLP exporter posts protobuf to /v1/metrics; instrument names travel as text in it.
        Assert.True(await Eventually.TrueAsync(() => receiver.Lines.Skip(1).Select(l => JsonNode.Parse(l)!).Any(r =>
            r["path"]?.GetValue<string>() == "/v1/metrics" && r["body"]!.GetValue<string>().Contains("trellis.broker.messages.received", StringComparison.Ordinal)), Timeout, Ct),
            "nothing pushed over OTLP: " + string.Join("\n", receiver.Lines.Select(l => l.Length > 200 ? l[..200] : l)));
    }

    public void Dispose()
    {
        if (Directory.Exists(_data))
        {
            Directory.Delete(_data, recursive: true);
        }
    }
}
