using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Gateway;

/// <summary>
/// The use-case samples (samples/): each setup script runs as written against a real server (and
/// again, unchanged), and the healthcare one, with its simulated fleet, raises alarms and fills the
/// time-series store.
/// </summary>
[Collection(TrellisServerGroup.Name)]
public sealed class SamplesTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private Dictionary<string, string> Environment => new()
    {
        ["TRELLIS_ENDPOINT"] = host.Endpoint,
        ["TRELLIS_DATA"] = host.DataDirectory,
        ["AWS_PROFILE"] = "trellis",
    };

    [Fact]
    public async Task The_sample_setups_run_as_written_and_the_healthcare_fleet_raises_alarms_and_stores_vital_signs()
    {
        var root = TrellisCli.RepositoryRoot();
        foreach (var profile in new[] { "smart-city", "industrial", "healthcare" })
        {
            var script = Path.Combine(root, "samples", profile, "setup.sh");
            var first = await ExternalTool.RunAsync("sh", [script], Timeout, Environment, Ct);
            Assert.True(first.ExitCode == 0, $"{script}: {first.Output}");
            var again = await ExternalTool.RunAsync("sh", [script], Timeout, Environment, Ct);
            Assert.True(again.ExitCode == 0, $"{script} a second time: {again.Output}");
        }

        var rules = await host.IotCallsAsync([("list_topic_rules", new { })], Ct);
        var names = rules[0]!["body"]!["rules"]!.AsArray().Select(r => r!["ruleName"]!.GetValue<string>()).ToList();
        Assert.Superset(new HashSet<string> { "city_store", "city_parking_full", "plant_store", "care_store", "care_battery_low" }, names.ToHashSet());

        var state = Path.Combine(host.DataDirectory, TrellisHost.Unique("care"));
        var run = await ExternalTool.RunAsync(TrellisCli.FileName, [.. TrellisCli.Leading, "simulate", "--profile", "healthcare", "--devices", "8", "--seconds", "8", "--interval-ms", "100", "--state", state, "--output", "json"], Timeout, Environment, Ct);
        Assert.True(run.ExitCode == 0, run.Output);
        // An alarm clears on the next normal reading (the models keep clearOnNormal), so by the end of the
        // run most are CLEARED: what matters is that the fleet raised them.
        var alarms = await host.SignedRequestAsync("GET", "/api/alarms?state=ACTIVE,ACKNOWLEDGED,CLEARED", null, Ct);
        var models = alarms["body"]!["alarms"]!.AsArray().Select(a => a!["model"]!.GetValue<string>()).ToHashSet();
        Assert.True(models.Contains("heart-rhythm") || models.Contains("low-spo2"), "no alarm from the healthcare fleet: " + alarms.ToJsonString());
        var from = DateTimeOffset.UtcNow.AddMinutes(-5).ToUnixTimeMilliseconds();
        var to = DateTimeOffset.UtcNow.AddMinutes(1).ToUnixTimeMilliseconds();
        // Wearables drop out of range at random (5–20 s), so count the fleet's heart rates, not one device's.
        var points = 0;
        for (var i = 0; i < 8; i++)
        {
            var stored = await host.SignedRequestAsync("GET", $"/api/telemetry/things/sim-healthcare-{i:D5}/heartRate?from={from}&to={to}", null, Ct);
            points += stored["body"]?["points"]?.AsArray().Count ?? 0;
        }

        Assert.True(points > 40, $"{points} heart rates stored for the 8 wearables");
    }
}
