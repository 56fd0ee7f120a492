using System.Net;
using System.Text;
using Trellis.Fleet.Defender;

namespace Trellis.UnitTests.Fleet;

/// <summary>Device Defender's behavior rules, comparisons, percentiles and the metrics report parser (long and short names, refusals).</summary>
public sealed class DefenderTests
{
    private static Behavior Numeric(string metric, string op, long? count = 10, int? duration = 300, string? statistic = null) =>
        new("b", metric, null, new BehaviorCriteria(op, count is null ? null : new MetricValue(count, null, null, null, null, null), duration, null, null, statistic, null), null, null);

    [Theory]
    [InlineData("aws:num-messages-sent", "less-than", 300, null, null)]
    [InlineData("aws:message-byte-size", "less-than-equals", null, null, null)]
    [InlineData("aws:num-messages-sent", "in-set", 300, null, "comparisonOperator")]
    [InlineData("aws:num-messages-sent", "less-than", null, null, "durationSeconds")]
    [InlineData("aws:num-messages-sent", "less-than", 0, null, "between 1 and 3600")]
    [InlineData("aws:num-messages-sent", "less-than", 300, "p42", "statistic must be one of")]
    [InlineData("aws:message-byte-size", "less-than", null, "p90", "needs durationSeconds")]
    [InlineData("aws:num-bogus", "less-than", 300, null, "unknown metric")]
    public void Numeric_behaviors_are_checked(string metric, string op, int? duration, string? statistic, string? error)
    {
        var behavior = Numeric(metric, op, statistic is null ? 10 : null, duration, statistic);
        var errors = DefenderMetrics.Validate([behavior]);
        if (error is null)
        {
            Assert.Empty(errors);
        }
        else
        {
            Assert.Contains(error, Assert.Single(errors), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Set_behaviors_need_their_sets_and_no_duration()
    {
        var cidr = new Behavior("ip", "aws:source-ip-address", null, new BehaviorCriteria("in-cidr-set", new MetricValue(null, ["10.0.0.0/8", "192.0.2.1"], null, null, null, null), null, null, null, null, null), null, null);
        Assert.Empty(DefenderMetrics.Validate([cidr]));
        var badCidr = cidr with { Criteria = cidr.Criteria! with { Value = new MetricValue(null, ["10.0.0.0/99"], null, null, null, null) } };
        Assert.Contains("not a CIDR block", Assert.Single(DefenderMetrics.Validate([badCidr])), StringComparison.Ordinal);
        var timed = cidr with { Criteria = cidr.Criteria! with { DurationSeconds = 60 } };
        Assert.Contains("list-based", Assert.Single(DefenderMetrics.Validate([timed])), StringComparison.Ordinal);
        Assert.Contains("twice", Assert.Single(DefenderMetrics.Validate([cidr, cidr])), StringComparison.Ordinal);
        var ml = cidr with { Criteria = cidr.Criteria! with { MlConfidenceLevel = "HIGH" } };
        Assert.Contains("ML Detect", Assert.Single(DefenderMetrics.Validate([ml])), StringComparison.Ordinal);
    }

    [Fact]
    public void Comparisons_say_what_is_normal()
    {
        Assert.True(DefenderMetrics.IsNormal("less-than", 4, 5));
        Assert.False(DefenderMetrics.IsNormal("less-than", 5, 5));
        Assert.True(DefenderMetrics.IsNormal("greater-than-equals", 5, 5));
        var networks = DefenderMetrics.Networks(["10.0.0.0/8"]);
        Assert.True(DefenderMetrics.IsNormal("in-cidr-set", [IPAddress.Parse("10.1.2.3")], networks));
        Assert.False(DefenderMetrics.IsNormal("in-cidr-set", [IPAddress.Parse("10.1.2.3"), IPAddress.Loopback], networks));
        Assert.True(DefenderMetrics.IsNormal("not-in-cidr-set", [IPAddress.Loopback], networks));
        Assert.True(DefenderMetrics.IsNormal("in-port-set", [443], [443, 8883]));
        Assert.False(DefenderMetrics.IsNormal("not-in-port-set", [22, 443], [22]));
        Assert.Equal(9, DefenderMetrics.Percentile([.. Enumerable.Range(1, 10).Select(i => (double)i)], 90));
        Assert.Equal(10, DefenderMetrics.Percentile([.. Enumerable.Range(1, 10).Select(i => (double)i)], 99.9));
        Assert.Equal(1, DefenderMetrics.Percentile([.. Enumerable.Range(1, 10).Select(i => (double)i)], 0));
        Assert.Null(DefenderMetrics.Percentile([], 50));
    }

    [Fact]
    public void Reports_read_long_and_short_names()
    {
        var longNames = """
            {"header":{"report_id":7,"version":"1.0"},"metrics":{
              "listening_tcp_ports":{"ports":[{"interface":"eth0","port":24800},{"port":22}],"total":2},
              "listening_udp_ports":{"ports":[{"port":5353}]},
              "network_stats":{"bytes_in":29152,"bytes_out":26485,"packets_in":220,"packets_out":271},
              "tcp_connections":{"established_connections":{"connections":[{"local_interface":"eth0","local_port":80,"remote_addr":"192.168.0.1:8000"},{"remote_addr":"[2001:db8::1]:443"}],"total":2}}},
             "custom_metrics":{"cpu":[{"number":1}]}}
            """;
        var report = DeviceMetricsReport.Parse(Encoding.UTF8.GetBytes(longNames), false, out _, out var error);
        Assert.True(report is not null, error);
        Assert.Equal(7, report.ReportId);
        Assert.Equal(26485, report.Numbers["aws:all-bytes-out"]);
        Assert.Equal(2, report.Numbers["aws:num-listening-tcp-ports"]);
        Assert.Equal(1, report.Numbers["aws:num-listening-udp-ports"]);
        Assert.Equal(2, report.Numbers["aws:num-established-tcp-connections"]);
        Assert.Equal([22, 24800], report.Ports["aws:listening-tcp-ports"].Order());
        Assert.Equal(["192.168.0.1", "2001:db8::1"], report.Destinations!.Select(a => a.ToString()));

        var shortNames = """{"hed":{"rid":8,"v":"1.0"},"met":{"tp":{"pts":[{"pt":443}],"t":1},"ns":{"bi":1,"bo":2,"pi":3,"po":4}}}""";
        var small = DeviceMetricsReport.Parse(Encoding.UTF8.GetBytes(shortNames), false, out _, out error);
        Assert.True(small is not null, error);
        Assert.Equal((8L, 4.0, 443), (small.ReportId, small.Numbers["aws:all-packets-out"], small.Ports["aws:listening-tcp-ports"].Single()));
        Assert.Null(small.Destinations);
    }

    [Theory]
    [InlineData("{", "InvalidPayload", "not valid JSON")]
    [InlineData("[]", "InvalidPayload", "must be an object")]
    [InlineData("""{"metrics":{}}""", "MissingHeader", "no header")]
    [InlineData("""{"header":{"report_id":"x","version":"1.0"},"metrics":{}}""", "InvalidHeader", "report_id")]
    [InlineData("""{"header":{"report_id":1,"version":"2.0"},"metrics":{}}""", "InvalidHeader", "version")]
    [InlineData("""{"header":{"report_id":1,"version":"1.0"}}""", "InvalidPayload", "no metrics")]
    [InlineData("""{"header":{"report_id":1,"version":"1.0"},"metrics":{"cpu":1}}""", "InvalidPayload", "unknown metric 'cpu'")]
    [InlineData("""{"header":{"report_id":1,"version":"1.0"},"metrics":{"network_stats":{"bytes_in":-1}}}""", "InvalidPayload", "negative")]
    [InlineData("""{"header":{"report_id":1,"version":"1.0"},"metrics":{"listening_tcp_ports":{"ports":[{"port":70000}]}}}""", "InvalidPayload", "70000")]
    [InlineData("""{"header":{"report_id":1,"version":"1.0"},"metrics":{"tcp_connections":{"established_connections":{"connections":[{"remote_addr":"nowhere"}]}}}}""", "InvalidPayload", "remote_addr")]
    [InlineData("""{"header":{"report_id":1,"version":"1.0"},"metrics":{},"extra":1}""", "InvalidPayload", "unknown member 'extra'")]
    public void Bad_reports_are_refused_with_the_reason(string json, string code, string reason)
    {
        Assert.Null(DeviceMetricsReport.Parse(Encoding.UTF8.GetBytes(json), false, out var errorCode, out var error));
        Assert.Equal(code, errorCode);
        Assert.Contains(reason, error, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_cbor_is_refused()
    {
        Assert.Null(DeviceMetricsReport.Parse(new byte[] { 0xbf, 0x61 }, true, out var code, out var error));
        Assert.Equal("InvalidPayload", code);
        Assert.Contains("not valid CBOR", error, StringComparison.Ordinal);
    }
}
