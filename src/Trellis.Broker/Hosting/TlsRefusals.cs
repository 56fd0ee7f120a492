using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Trellis.Broker.Hosting;

/// <summary>
/// Refused TLS handshakes, made visible: each is counted by kind (metric
/// <c>trellis.broker.tls.refused</c>), and logged as a warning with what to do once per source
/// address and kind every ten minutes (a device retrying every second, or a scanner, does not flood
/// the log); the repeats go to the debug log.
/// </summary>
public sealed class TlsRefusals(ILogger logger, BrokerMetrics metrics, TimeProvider time)
{
    private static readonly TimeSpan Quiet = TimeSpan.FromMinutes(10);
    private readonly ConcurrentDictionary<(string Source, string Kind), long> _logged = new();

    /// <summary>Counts and reports one refused handshake.</summary>
    public void Refused(string remote, string listener, string reason)
    {
        var (kind, advice) = Classify(reason);
        metrics.TlsRefused(kind);
        var source = Source(remote);
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var key = (source, kind);
        if (_logged.TryGetValue(key, out var last) && now - last < Quiet.TotalMilliseconds)
        {
            logger.TlsHandshakeFailed(remote, listener, reason);
            return;
        }

        if (_logged.Count > 10_000)
        {
            _logged.Clear(); // bounded: a flood of sources costs at most this much memory
        }

        _logged[key] = now;
        logger.TlsRefused(source, listener, reason, advice);
    }

    /// <summary>The kind of a refusal (a metric tag) and what to do about it.</summary>
    public static (string Kind, string Advice) Classify(string reason)
    {
        bool Has(string text) => reason.Contains(text, StringComparison.OrdinalIgnoreCase);
        if (Has("did not return a certificate") || Has("no certificate"))
        {
            return ("no-certificate", "the client sent no certificate: this port takes devices with their own X.509 certificate (trellis provision); a device with a token connects to the plain MQTT port instead");
        }

        if (Has("expired"))
        {
            return ("expired", "the client's certificate has expired: give the device a new one (trellis provision, or fleet provisioning)");
        }

        if (Has("not yet valid"))
        {
            return ("not-yet-valid", "the client's certificate is not valid yet: check the device's clock");
        }

        if (Has("self-signed") || Has("self signed") || Has("unable to get local issuer") || Has("unable to get issuer") || Has("unable to verify the first certificate"))
        {
            return ("unknown-ca", "the client's certificate is not signed by a CA this server trusts: use a certificate Trellis made, or register your CA (trellis cas register) so its devices are accepted");
        }

        if (Has("alert unknown ca") || Has("alert bad certificate") || Has("alert certificate unknown"))
        {
            return ("server-not-trusted", "the client does not trust this server's certificate: give it the server's CA (data/ca.pem) and connect to a host name the certificate names (--hostname)");
        }

        if (Has("wrong version number") || Has("http request") || Has("unknown protocol") || Has("record layer failure") || Has("packet length too long"))
        {
            return ("not-tls", "the client did not speak TLS: plain MQTT goes to the --mqtt port; this port needs TLS");
        }

        if (Has("no completed handshake"))
        {
            return ("timeout", "the client opened the connection and did not finish the handshake in time");
        }

        if (Has("closed"))
        {
            return ("closed", "the client hung up during the handshake: it may not trust this server's certificate (give it data/ca.pem) or may have refused the protocol version");
        }

        return ("other", "check the client's TLS settings (TLS 1.2 or 1.3, its certificate and the server's CA)");
    }

    private static string Source(string remote)
    {
        var colon = remote.LastIndexOf(':');
        return colon > 0 && !remote.EndsWith(']') ? remote[..colon] : remote;
    }
}
