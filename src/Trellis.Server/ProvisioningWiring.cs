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
        if (FleetProvisioningService.MakesCertificate(topic) && limit.Refusal(principal?.SessionOwner ?? "client:" + clientId) is { } refusal)
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
/// Token buckets for making certificates: one per principal and one for the server
/// (<see cref="ProvisioningOptions"/>). A refusal says which limit was hit and when to retry.
/// </summary>
internal sealed class CertificateRateLimit : IDisposable
{
    private readonly ProvisioningOptions _options;
    private readonly System.Threading.RateLimiting.PartitionedRateLimiter<string> _perPrincipal;
    private readonly System.Threading.RateLimiting.TokenBucketRateLimiter _total;

    public CertificateRateLimit(ProvisioningOptions options)
    {
        _options = options;
        _perPrincipal = System.Threading.RateLimiting.PartitionedRateLimiter.Create<string, string>(principal =>
            System.Threading.RateLimiting.RateLimitPartition.GetTokenBucketLimiter(principal, _ => Bucket(options.CertificatesPerSecondPerPrincipal, options.CertificateBurstPerPrincipal)));
        _total = new System.Threading.RateLimiting.TokenBucketRateLimiter(Bucket(options.CertificatesPerSecond, options.CertificateBurst));
    }

    /// <summary>Null when <paramref name="principal"/> may have one more certificate made now, else why not.</summary>
    public string? Refusal(string principal)
    {
        using var mine = _perPrincipal.AttemptAcquire(principal);
        if (!mine.IsAcquired)
        {
            return $"Rate exceeded: at most {_options.CertificatesPerSecondPerPrincipal} certificates per second for one principal (after a burst of {_options.CertificateBurstPerPrincipal}). Retry with backoff.";
        }

        using var all = _total.AttemptAcquire();
        return all.IsAcquired ? null
            : $"Rate exceeded: at most {_options.CertificatesPerSecond} certificates per second for the whole server (after a burst of {_options.CertificateBurst}). Retry with backoff.";
    }

    public void Dispose()
    {
        _perPrincipal.Dispose();
        _total.Dispose();
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
