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
}
