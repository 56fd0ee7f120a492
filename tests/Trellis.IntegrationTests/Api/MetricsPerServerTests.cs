using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary>
/// Two servers in one process (an embedding program; the tests, which run collections side by
/// side) each export their own counters at /metrics: mosquitto's publishes to one, or a thing its
/// fleet index makes searchable, are not counted by the other, and one server stopping does not end
/// the other's series.
/// </summary>
public sealed class MetricsPerServerTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Each_server_exports_its_own_counters_and_keeps_them_when_the_other_stops()
    {
        await using var first = new TrellisHost();
        await first.InitializeAsync();
        var second = new TrellisHost();
        await second.InitializeAsync();
        try
        {
            await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. first.AdminArgs(TrellisHost.Unique("pub")), "-t", "metrics/one", "-m", "1", "-q", "1", "--repeat", "3"], Timeout, cancellationToken: Ct);
            await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. second.AdminArgs(TrellisHost.Unique("pub")), "-t", "metrics/two", "-m", "1", "-q", "1"], Timeout, cancellationToken: Ct);
            Assert.Equal(3, await ReceivedAsync(first));
            Assert.Equal(1, await ReceivedAsync(second));

            // The fleet index's lag too: only the first indexes a thing, so only its histogram counts it.
            var lagBefore = await IndexLagCountAsync(second);
            var calls = await first.IotCallsAsync([("update_indexing_configuration", new { thingIndexingConfiguration = new { thingIndexingMode = "REGISTRY" } }), ("create_thing", new { thingName = TrellisHost.Unique("indexed") })], Ct);
            Assert.All(calls, c => Assert.Equal(200, c!["status"]!.GetValue<int>()));
            Assert.True(await Eventually.TrueAsync(async () => await IndexLagCountAsync(first) >= 1, Timeout, Ct), "the first server's index lag was never exported");
            Assert.Equal(lagBefore, await IndexLagCountAsync(second));
        }
        finally
        {
            await second.DisposeAsync();
        }

        Assert.Equal(3, await ReceivedAsync(first));
        await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. first.AdminArgs(TrellisHost.Unique("pub")), "-t", "metrics/one", "-m", "1", "-q", "1"], Timeout, cancellationToken: Ct);
        // The exporter answers a scrape from its cache for 300 ms: the new count shows on a later one.
        Assert.True(await Eventually.TrueAsync(async () => await ReceivedAsync(first) == 4, Timeout, Ct), "the fourth publish was not counted");
    }

    /// <summary>The server's PUBLISH count as its /metrics says it (-1 when the series is missing).</summary>
    private static Task<double> ReceivedAsync(TrellisHost host) => MetricAsync(host, "trellis_broker_messages_received_total");

    /// <summary>Changes the server's fleet index made searchable, as its lag histogram's count says (-1 when missing).</summary>
    private static Task<double> IndexLagCountAsync(TrellisHost host) => MetricAsync(host, "trellis_fleet_index_lag_seconds_count");

    private static async Task<double> MetricAsync(TrellisHost host, string name)
    {
        using var http = new HttpClient();
        var text = await http.GetStringAsync(host.Endpoint + "/metrics", Ct);
        return PrometheusText.Value(text, name) ?? -1;
    }
}
