using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Trellis.Device;

namespace Trellis.Gateway;

/// <summary>
/// A gateway's first start from a claim certificate (fleet provisioning, docs/gateway.md): it
/// connects with the claim, makes its own key, gets a certificate from its CSR and registers
/// itself through the template with its serial number, then writes its identity folder in the
/// layout `trellis provision` makes (device.json, THING.cert.pem, THING.private.key at 0600,
/// ca.pem), so every later start uses that identity and the claim is no longer needed.
/// </summary>
public static partial class GatewayClaim
{
    /// <summary>Provisions into <paramref name="identityFolder"/>, retrying while the server cannot be reached; returns the thing name.</summary>
    public static async Task<string> ProvisionAsync(DeviceOptions claim, string template, string serial, string identityFolder, ILogger logger, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(claim);
        var connection = new DeviceOptions
        {
            Host = claim.Host,
            Port = claim.Port,
            ThingName = claim.ThingName,
            ClientId = $"{claim.ThingName}-{serial}",
            Certificate = claim.Certificate,
            CaCertificate = claim.CaCertificate,
        };
        var backoff = TimeSpan.FromSeconds(1);
        while (true)
        {
            try
            {
                await using var device = await TrellisDevice.ConnectAsync(connection, ct);
                using var provisioning = new FleetProvisioningClient(device);
                var (thing, certificatePem, keyPem) = await provisioning.ProvisionWithNewKeyAsync(template, serial, new Dictionary<string, string> { ["SerialNumber"] = serial }, ct);
                var name = thing.ThingName ?? throw new ProvisioningRejectedException(400, "InvalidRequestException", $"template {template} made no thing: give it an AWS::IoT::Thing resource");
                await WriteAsync(identityFolder, name, claim, certificatePem, keyPem, ct);
                LogProvisioned(logger, name, template, serial, identityFolder);
                return name;
            }
            catch (Exception e) when (e is ProvisioningRejectedException or InvalidOperationException)
            {
                throw; // the template or the claim's policy is wrong: trying again changes nothing
            }
            catch (Exception e) when (!ct.IsCancellationRequested && e is not OutOfMemoryException)
            {
                LogRetry(logger, claim.Host, claim.Port, e.Message, backoff.TotalSeconds);
                await Task.Delay(backoff, ct);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
            }
        }
    }

    private static async Task WriteAsync(string folder, string thing, DeviceOptions claim, string certificatePem, string keyPem, CancellationToken ct)
    {
        GatewayFiles.CreatePrivateDirectory(folder);
        IdentityFiles.WritePrivate(Path.Combine(folder, thing + ".private.key"), keyPem);

        await File.WriteAllTextAsync(Path.Combine(folder, thing + ".cert.pem"), certificatePem, ct);
        await File.WriteAllTextAsync(Path.Combine(folder, "ca.pem"), claim.CaCertificate.ExportCertificatePem(), ct);

        // device.json last: its presence is what says the folder is complete.
        var description = new JsonObject { ["thingName"] = thing, ["host"] = claim.Host, ["port"] = claim.Port, ["provisionedByClaim"] = true };
        var temporary = Path.Combine(folder, "device.json.tmp");
        await File.WriteAllTextAsync(temporary, description.ToJsonString() + "\n", ct);
        File.Move(temporary, Path.Combine(folder, "device.json"), overwrite: true);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Provisioned by claim as thing {Thing} (template {Template}, serial {Serial}); identity written to {Folder}, used from now on")]
    private static partial void LogProvisioned(ILogger logger, string thing, string template, string serial, string folder);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Fleet provisioning through {Host}:{Port} failed: {Reason}; trying again in {Seconds} s")]
    private static partial void LogRetry(ILogger logger, string host, int port, string reason, double seconds);
}
