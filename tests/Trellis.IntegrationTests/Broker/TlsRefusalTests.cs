using System.Text.RegularExpressions;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Broker;

/// <summary>
/// Refused TLS handshakes are visible on the server: mosquitto clients without a certificate, with
/// a self-signed one, trusting another CA, speaking plain MQTT to the TLS port and TLS to the plain
/// port each leave a log line saying what to do, and the first four are counted by kind in /metrics.
/// </summary>
[Collection(TrellisServerGroup.Name)]
public sealed partial class TlsRefusalTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Each_refused_handshake_is_logged_with_what_to_do_and_counted_by_kind()
    {
        var folder = Directory.CreateDirectory(Path.Combine(host.DataDirectory, TrellisHost.Unique("tlsbad"))).FullName;
        var (selfCert, selfKey) = (Path.Combine(folder, "self.pem"), Path.Combine(folder, "self.key"));
        await ExternalTool.RunCheckedAsync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", selfKey, "-out", selfCert, "-subj", "/CN=self", "-days", "2"], Timeout, cancellationToken: Ct);
        var tls = host.MqttsPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var cases = new (string Kind, string Advice, string[] Args)[]
        {
            ("no-certificate", "the client sent no certificate", ["-p", tls, "--cafile", host.CaPath]),
            ("unknown-ca", "not signed by a CA this server trusts", ["-p", tls, "--cafile", host.CaPath, "--cert", selfCert, "--key", selfKey]),
            ("server-not-trusted", "the client does not trust this server's certificate", ["-p", tls, "--cafile", "/etc/ssl/certs/ca-certificates.crt"]),
            ("not-tls", "the client did not speak TLS", ["-p", tls]),
        };
        foreach (var (kind, advice, args) in cases)
        {
            var before = await RefusedAsync(kind);
            var result = await ExternalTool.RunAsync("mosquitto_pub", ["-h", "127.0.0.1", .. args, "-i", TrellisHost.Unique("tls"), "-t", "x", "-m", "1"], Timeout, cancellationToken: Ct);
            Assert.NotEqual(0, result.ExitCode); // refused, not hung: RunAsync reports a time-out as -1 with a message
            Assert.DoesNotContain("timed out", result.Output, StringComparison.OrdinalIgnoreCase);
            Assert.True(await Eventually.TrueAsync(async () => await RefusedAsync(kind) > before, Timeout, Ct), $"{kind} was not counted");
            Assert.True(host.Logs.Contains(advice), $"no log line saying '{advice}'");
        }

        // TLS on the plain port: the broker says what it saw instead of a framing error.
        var hello = await ExternalTool.RunAsync("mosquitto_pub", ["-h", "127.0.0.1", "-p", host.MqttPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "--cafile", host.CaPath, "-t", "x", "-m", "1"], Timeout, cancellationToken: Ct);
        Assert.NotEqual(0, hello.ExitCode);
        Assert.True(await Eventually.TrueAsync(() => host.Logs.Contains("this is a TLS ClientHello, not an MQTT CONNECT"), Timeout, Ct), "no log line for TLS on the plain port");
    }

    private async Task<long> RefusedAsync(string kind)
    {
        using var http = new HttpClient();
        var text = await http.GetStringAsync(host.Endpoint + "/metrics", Ct);
        var match = Counter().Matches(text).FirstOrDefault(m => m.Groups["kind"].Value == kind);
        return match is null ? 0 : long.Parse(match.Groups["n"].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    [GeneratedRegex("""trellis_broker_tls_refused_total\{[^}]*reason="(?<kind>[a-z-]+)"[^}]*\} (?<n>\d+)""")]
    private static partial Regex Counter();
}
