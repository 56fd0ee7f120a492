using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Trellis.Broker;
using Trellis.Registry;
using Trellis.Registry.Provisioning;

namespace Trellis.Server;

/// <summary>
/// Fleet provisioning requests (<c>$aws/certificates/create…</c>, <c>$aws/provisioning-templates/…/provision</c>)
/// go to the provisioning service; the reply goes back on the requesting connection only, since it may carry a private key.
/// </summary>
internal sealed class FleetProvisioningTopicHandler(FleetProvisioningService provisioning, MqttBroker broker, CertificateRateLimit limit) : IServerTopicHandler
{
    public bool Handles(string topic) => FleetProvisioningService.IsRequestTopic(topic);

    public async Task HandleAsync(string topic, ReadOnlyMemory<byte> payload, string clientId)
    {
        var principal = broker.PrincipalOf(clientId);
        var claim = principal?.CertificateId;
        if (FleetProvisioningService.MakesCertificate(topic) && limit.Refusal(principal?.SessionOwner ?? "client:" + clientId, withKeys: !topic.StartsWith("$aws/certificates/create-from-csr/", StringComparison.Ordinal)) is { } refusal)
        {
            var (throttledTopic, throttled) = FleetProvisioningService.Throttled(topic, refusal);
            broker.SendToClient(clientId, throttledTopic, throttled);
            return;
        }

        var (replyTopic, reply) = await provisioning.HandleAsync(topic, payload, clientId, claim, CancellationToken.None);
        broker.SendToClient(clientId, replyTopic, reply);
    }
}

/// <summary>
/// Token buckets for making certificates (<see cref="ProvisioningOptions"/>): for key pairs the
/// server makes and for certificates signed from CSRs, each one per principal and one for the
/// server. A refusal says which limit was hit.
/// </summary>
internal sealed class CertificateRateLimit : IDisposable, Trellis.Api.Aws.IKeyPairLimit
{
    private readonly Buckets _keys;
    private readonly Buckets _csr;

    public CertificateRateLimit(ProvisioningOptions options)
    {
        _keys = new Buckets("key pairs made by the server", options.KeysPerSecondPerPrincipal, options.KeyBurstPerPrincipal, options.KeysPerSecond, options.KeyBurst);
        _csr = new Buckets("certificates signed from CSRs", options.CsrCertificatesPerSecondPerPrincipal, options.CsrCertificateBurstPerPrincipal, options.CsrCertificatesPerSecond, options.CsrCertificateBurst);
    }

    /// <summary>Null when <paramref name="principal"/> may have one more certificate made now (with a server-made key pair when <paramref name="withKeys"/>), else why not.</summary>
    public string? Refusal(string principal, bool withKeys) => (withKeys ? _keys : _csr).Refusal(principal);

    /// <summary>A key pair the server makes for an API caller (CreateProvisioningClaim).</summary>
    public string? Refusal(string principal) => Refusal(principal, withKeys: true);

    public void Dispose()
    {
        _keys.Dispose();
        _csr.Dispose();
    }

    private sealed class Buckets : IDisposable
    {
        private readonly string _what;
        private readonly double _perPrincipal;
        private readonly int _principalBurst;
        private readonly double _total;
        private readonly int _totalBurst;
        private readonly System.Threading.RateLimiting.PartitionedRateLimiter<string> _principals;
        private readonly System.Threading.RateLimiting.TokenBucketRateLimiter _all;

        public Buckets(string what, double perPrincipal, int principalBurst, double total, int totalBurst)
        {
            (_what, _perPrincipal, _principalBurst, _total, _totalBurst) = (what, perPrincipal, principalBurst, total, totalBurst);
            _principals = System.Threading.RateLimiting.PartitionedRateLimiter.Create<string, string>(principal =>
                System.Threading.RateLimiting.RateLimitPartition.GetTokenBucketLimiter(principal, _ => Bucket(perPrincipal, principalBurst)));
            _all = new System.Threading.RateLimiting.TokenBucketRateLimiter(Bucket(total, totalBurst));
        }

        public string? Refusal(string principal)
        {
            using var mine = _principals.AttemptAcquire(principal);
            if (!mine.IsAcquired)
            {
                return $"Rate exceeded: at most {_perPrincipal} {_what} per second for one principal (after a burst of {_principalBurst}). Retry with backoff.";
            }

            using var all = _all.AttemptAcquire();
            return all.IsAcquired ? null
                : $"Rate exceeded: at most {_total} {_what} per second for the whole server (after a burst of {_totalBurst}). Retry with backoff.";
        }

        public void Dispose()
        {
            _principals.Dispose();
            _all.Dispose();
        }

        private static System.Threading.RateLimiting.TokenBucketRateLimiterOptions Bucket(double perSecond, int burst)
        {
            // Whole tokens every period: a rate below one per second refills one token every 1/rate seconds.
            var period = perSecond >= 1 ? TimeSpan.FromSeconds(1) : TimeSpan.FromSeconds(1 / perSecond);
            return new()
            {
                TokenLimit = Math.Max(1, burst),
                TokensPerPeriod = Math.Max(1, (int)Math.Round(perSecond >= 1 ? perSecond : 1)),
                ReplenishmentPeriod = period,
                QueueLimit = 0,
                AutoReplenishment = true,
            };
        }
    }
}

/// <summary>Announces certificates that registered themselves as PENDING_ACTIVATION, on AWS's topic.</summary>
internal static class CertificateEvents
{
    public static void PublishRegistered(MqttBroker broker, RegistryOptions options, CertificateRecord certificate, string caId)
    {
        var body = new JsonObject
        {
            ["certificateId"] = certificate.Id,
            ["caCertificateId"] = caId,
            ["timestamp"] = certificate.CreatedMs,
            ["certificateStatus"] = certificate.Status,
            ["awsAccountId"] = options.AccountId,
            ["certificateRegistrationTimestamp"] = certificate.CreatedMs.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        broker.PublishFromServer($"$aws/events/certificates/registered/{caId}", Encoding.UTF8.GetBytes(body.ToJsonString()), qos: 1);
    }
}

/// <summary>Deletes expired ownership tokens and the certificates nobody provisioned with them.</summary>
internal sealed partial class ClaimSweeper(RegistryService registry, ProvisioningOptions options, ILogger<ClaimSweeper> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.SweepInterval);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                if (registry.SweepExpiredClaims() is var deleted and > 0)
                {
                    LogSwept(logger, deleted);
                }
            }
            catch (Microsoft.Data.Sqlite.SqliteException e)
            {
                LogSweepFailed(logger, e);
            }
        }
    }

    [LoggerMessage(EventId = 5101, Level = LogLevel.Information, Message = "Deleted {Count} certificate(s) created for fleet provisioning whose ownership token expired unused.")]
    private static partial void LogSwept(ILogger logger, int count);

    [LoggerMessage(EventId = 5102, Level = LogLevel.Warning, Message = "Sweeping expired ownership tokens failed; the next sweep retries.")]
    private static partial void LogSweepFailed(ILogger logger, Exception exception);
}
