using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Trellis.Broker;
using Trellis.Broker.Hosting;

namespace Trellis.UnitTests.Broker;

public sealed class TlsRefusalsTests
{
    [Theory]
    [InlineData("error:0A0000C7:SSL routines::peer did not return a certificate", "no-certificate")]
    [InlineData("client certificate refused: certificate has expired", "expired")]
    [InlineData("client certificate refused: certificate is not yet valid", "not-yet-valid")]
    [InlineData("client certificate refused: self-signed certificate", "unknown-ca")]
    [InlineData("client certificate refused: unable to get local issuer certificate", "unknown-ca")]
    [InlineData("error:0A000418:SSL routines::tlsv1 alert unknown ca", "server-not-trusted")]
    [InlineData("error:0A00010B:SSL routines::wrong version number", "not-tls")]
    [InlineData("no completed handshake within 10 s (Broker:ConnectTimeoutSeconds)", "timeout")]
    [InlineData("the client closed the connection during the handshake", "closed")]
    [InlineData("something else entirely", "other")]
    public void Each_failure_is_given_its_kind(string reason, string kind) =>
        Assert.Equal(kind, TlsRefusals.Classify(reason).Kind);

    [Fact]
    public void One_warning_per_source_and_kind_every_ten_minutes_the_rest_at_debug()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch);
        var logger = new Recorder();
        using var metrics = new BrokerMetrics();
        var refusals = new TlsRefusals(logger, metrics, time);
        const string NoCertificate = "peer did not return a certificate";

        refusals.Refused("10.0.0.1:5000", "mqtts:8883", NoCertificate);
        refusals.Refused("10.0.0.1:5001", "mqtts:8883", NoCertificate); // same source, another port: a repeat
        refusals.Refused("10.0.0.2:5000", "mqtts:8883", NoCertificate); // another source
        refusals.Refused("10.0.0.1:5002", "mqtts:8883", "wrong version number"); // another kind
        Assert.Equal(3, logger.Warnings);
        Assert.Equal(1, logger.Debugs);

        time.Advance(TimeSpan.FromMinutes(11));
        refusals.Refused("10.0.0.1:5003", "mqtts:8883", NoCertificate);
        Assert.Equal(4, logger.Warnings);
    }

    private sealed class Recorder : ILogger
    {
        public int Warnings { get; private set; }

        public int Debugs { get; private set; }

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel == LogLevel.Warning)
            {
                Warnings++;
            }
            else if (logLevel == LogLevel.Debug)
            {
                Debugs++;
            }
        }
    }
}
