using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Trellis.Device;

namespace Trellis.Simulator;

/// <summary>
/// Gives each simulated device its own identity by fleet provisioning with a shared claim
/// certificate, as a factory-fresh device would: an EC P-256 key made on the device, a certificate
/// from its CSR (<c>$aws/certificates/create-from-csr</c>), then RegisterThing with the template
/// and the device's serial number. Identities are kept in the state folder (key 0600), so the
/// next run of the same fleet connects at once.
/// </summary>
public sealed class ClaimProvisioner(DeviceOptions claim, string template, string stateDirectory) : IAsyncDisposable
{
    private readonly SemaphoreSlim _connecting = new(1, 1);
    private TrellisDevice? _connection;
    private FleetProvisioningClient? _client;

    /// <summary>Devices provisioned by this run (the others were in the state folder already).</summary>
    public int Provisioned { get; private set; }

    /// <summary>The device's identity: from the state folder, or provisioned now.</summary>
    public async Task<DeviceOptions> IdentityAsync(string serial, CancellationToken ct)
    {
        var folder = Path.Combine(stateDirectory, "devices");
        var description = Path.Combine(folder, serial + ".json");
        var certificatePath = Path.Combine(folder, serial + ".cert.pem");
        var keyPath = Path.Combine(folder, serial + ".private.key");
        if (File.Exists(description) && File.Exists(certificatePath) && File.Exists(keyPath))
        {
            var thing = JsonNode.Parse(await File.ReadAllTextAsync(description, ct))!["thingName"]!.GetValue<string>();
            return Options(thing, X509Certificate2.CreateFromPemFile(certificatePath, keyPath));
        }

        var client = await ClientAsync(ct);
        var (registered, certificatePem, keyPem) = await client.ProvisionWithNewKeyAsync(template, serial, new Dictionary<string, string> { ["SerialNumber"] = serial }, ct);
        Directory.CreateDirectory(folder);
        await File.WriteAllTextAsync(certificatePath, certificatePem, ct);
        IdentityFiles.WritePrivate(keyPath, keyPem);

        await File.WriteAllTextAsync(description, new JsonObject { ["thingName"] = registered.ThingName }.ToJsonString(), ct);
        Provisioned++;
        return Options(registered.ThingName!, X509Certificate2.CreateFromPem(certificatePem, keyPem));
    }

    public async ValueTask DisposeAsync()
    {
        _client?.Dispose();
        if (_connection is not null)
        {
            await _connection.DisposeAsync();
        }

        _connecting.Dispose();
    }

    private DeviceOptions Options(string thing, X509Certificate2 certificate) => new()
    {
        Host = claim.Host,
        Port = claim.Port,
        ThingName = thing,
        Certificate = certificate,
        CaCertificate = claim.CaCertificate,
    };

    private async Task<FleetProvisioningClient> ClientAsync(CancellationToken ct)
    {
        await _connecting.WaitAsync(ct);
        try
        {
            if (_connection is { IsConnected: true } && _client is not null)
            {
                return _client;
            }

            _client?.Dispose();
            if (_connection is not null)
            {
                await _connection.DisposeAsync();
            }

            _connection = await TrellisDevice.ConnectAsync(claim, ct);
            _client = new FleetProvisioningClient(_connection);
            return _client;
        }
        finally
        {
            _connecting.Release();
        }
    }
}
