using System.Globalization;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary>Retention set through the API (signed by botocore) drops a measure's expired days at once and keeps the rest.</summary>
[Collection(TrellisServerGroup.Name)]
public sealed class TelemetryRetentionTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Retention_set_through_the_api_drops_expired_points_of_that_measure_only()
    {
        var prefix = TrellisHost.Unique("ret");
        var (measure, other) = ("m" + prefix.Replace("-", string.Empty, StringComparison.Ordinal), "o" + prefix.Replace("-", string.Empty, StringComparison.Ordinal));
        var rule = await host.IotCallsAsync([("create_topic_rule", new
        {
            ruleName = prefix.Replace("-", "_", StringComparison.Ordinal),
            topicRulePayload = new
            {
                sql = $"SELECT {measure}, {other} FROM '{prefix}/+'",
                actions = new object[] { new { timestream = new { roleArn = "r", databaseName = "d", tableName = "t", dimensions = new[] { new { name = "thing", value = "${topic(2)}" } }, timestamp = new { value = "${at}", unit = "MILLISECONDS" } } } },
            },
        })], Ct);
        Assert.True(rule[0]!["status"]!.GetValue<int>() == 200, rule[0]!.ToJsonString());

        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var threeDaysAgo = now - (3 * 86_400_000L);
        foreach (var at in new[] { threeDaysAgo, now - 60_000 })
        {
            await ExternalTool.RunCheckedAsync("mosquitto_pub", [.. host.AdminArgs(TrellisHost.Unique("p")), "-t", $"{prefix}/dev", "-m", $"{{\"{measure}\":1,\"{other}\":2,\"at\":{at}}}", "-q", "1"], Timeout, cancellationToken: Ct);
        }

        Assert.True(await Eventually.TrueAsync(async () => await CountAsync(measure, threeDaysAgo - 1000) == 2 && await CountAsync(other, threeDaysAgo - 1000) == 2, Timeout, Ct), "the points did not arrive");

        var set = await host.SignedRequestAsync("PUT", $"/api/telemetry/retention/{measure}", """{"days":1}""", Ct);
        Assert.True(set["status"]!.GetValue<int>() == 200, set.ToJsonString());
        var listed = await host.SignedRequestAsync("GET", "/api/telemetry/retention", null, Ct);
        Assert.Equal(1, listed["body"]!["retention"]![measure]!.GetValue<int>());

        // The three-day-old point of the measure is gone; its recent point and the other measure's are kept.
        Assert.Equal(1, await CountAsync(measure, threeDaysAgo - 1000));
        Assert.Equal(2, await CountAsync(other, threeDaysAgo - 1000));

        var refused = await host.SignedRequestAsync("PUT", $"/api/telemetry/retention/{measure}", """{"days":0}""", Ct);
        Assert.Equal(400, refused["status"]!.GetValue<int>());
        Assert.Equal(200, (await host.SignedRequestAsync("PUT", $"/api/telemetry/retention/{measure}", """{"days":null}""", Ct))["status"]!.GetValue<int>());
        Assert.Null((await host.SignedRequestAsync("GET", "/api/telemetry/retention", null, Ct))["body"]!["retention"]![measure]);
    }

    private async Task<long> CountAsync(string measure, long from)
    {
        var to = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + 60_000;
        var answer = await host.SignedRequestAsync("GET", string.Create(CultureInfo.InvariantCulture, $"/api/telemetry/measures/{measure}/summary?thing=dev&from={from}&to={to}"), null, Ct);
        return answer["body"]?["count"]?.GetValue<long>() ?? -1;
    }
}
