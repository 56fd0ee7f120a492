using System.Security.Cryptography.X509Certificates;

namespace Trellis.Device;

/// <summary>How a device reaches Trellis: endpoint, identity (certificate and key) and the CA it trusts.</summary>
public sealed class DeviceOptions
{
    /// <summary>Host name or address of the Trellis MQTT TLS endpoint (must be in the server certificate).</summary>
    public required string Host { get; init; }

    /// <summary>MQTT over TLS port (8883 unless the server was started otherwise).</summary>
    public int Port { get; init; } = 8883;

    /// <summary>The thing this device is; shadows and topics are addressed by it.</summary>
    public required string ThingName { get; init; }

    /// <summary>The MQTT client id; defaults to the thing name, as AWS's usual policies expect.</summary>
    public string? ClientId { get; init; }

    /// <summary>The device certificate with its private key.</summary>
    public required X509Certificate2 Certificate { get; init; }

    /// <summary>The CA the server certificate must chain to (the data folder's <c>ca.pem</c>).</summary>
    public required X509Certificate2 CaCertificate { get; init; }

    /// <summary>Keep-alive interval (default 30 s).</summary>
    public TimeSpan KeepAlive { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a request (shadow get/update/delete) waits for its reply before it fails.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Loads the files <c>trellis provision</c> and <c>create-keys-and-certificate</c> produce:
    /// a PEM certificate, its PEM private key and the server's CA in PEM.
    /// </summary>
    public static DeviceOptions FromPemFiles(string host, int port, string thingName, string certificatePath, string privateKeyPath, string caPath) => new()
    {
        Host = host,
        Port = port,
        ThingName = thingName,
        Certificate = X509Certificate2.CreateFromPemFile(certificatePath, privateKeyPath),
        CaCertificate = X509CertificateLoader.LoadCertificateFromFile(caPath),
    };

    /// <summary>
    /// Loads a device folder as <c>trellis provision --thing NAME --out DIR</c> writes it:
    /// <c>device.json</c> (thing name, host, port), <c>NAME.cert.pem</c>, <c>NAME.private.key</c> and <c>ca.pem</c>.
    /// </summary>
    /// <exception cref="InvalidOperationException">The folder is not a device folder; the message says how to make one.</exception>
    public static DeviceOptions FromFolder(string folder)
    {
        var description = Path.Combine(folder, "device.json");
        if (!File.Exists(description))
        {
            throw new InvalidOperationException($"{description} is missing: make the folder with `trellis provision --thing NAME --out {folder}`.");
        }

        var device = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(description)) as System.Text.Json.Nodes.JsonObject
            ?? throw new InvalidOperationException($"{description} is not a JSON object.");
        var thing = device["thingName"]?.GetValue<string>() ?? throw new InvalidOperationException($"{description} names no thingName.");
        return FromPemFiles(device["host"]?.GetValue<string>() ?? "localhost", device["port"]?.GetValue<int>() ?? 8883, thing,
            Path.Combine(folder, thing + ".cert.pem"), Path.Combine(folder, thing + ".private.key"), Path.Combine(folder, "ca.pem"));
    }
}
