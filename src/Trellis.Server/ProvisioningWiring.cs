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
internal sealed class FleetProvisioningTopicHandler(FleetProvisioningService provisioning, MqttBroker broker) : IServerTopicHandler
{
    public bool Handles(string topic) => FleetProvisioningService.IsRequestTopic(topic);

    public async Task HandleAsync(string topic, ReadOnlyMemory<byte> payload, string clientId)
    {
        var claim = broker.PrincipalOf(clientId)?.CertificateId;
        var (replyTopic, reply) = await provisioning.HandleAsync(topic, payload, clientId, claim, CancellationToken.None);
        broker.SendToClient(clientId, replyTopic, reply);
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
