using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Trellis.Device;

/// <summary>A certificate issued over MQTT, and the token that proves the device owns it (valid for one hour).</summary>
public sealed record ProvisionedCertificate(string CertificateId, string CertificatePem, string? PrivateKeyPem, string OwnershipToken);

/// <summary>The outcome of RegisterThing: the device's thing and the template's DeviceConfiguration.</summary>
public sealed record RegisteredThing(string? ThingName, IReadOnlyDictionary<string, string> DeviceConfiguration);

/// <summary>
/// Fleet provisioning by claim, on a connection made with the shared claim certificate:
/// get a certificate of the device's own (<see cref="CreateKeysAndCertificateAsync"/> or
/// <see cref="CreateCertificateFromCsrAsync"/>), then register the thing through a template
/// (<see cref="RegisterThingAsync"/>), then reconnect with the new certificate.
/// </summary>
/// <example>
/// <code>
/// await using var claim = await TrellisDevice.ConnectAsync(claimOptions);
/// using var provisioning = new FleetProvisioningClient(claim);
/// var certificate = await provisioning.CreateKeysAndCertificateAsync();
/// var thing = await provisioning.RegisterThingAsync("my-template", certificate.OwnershipToken, new Dictionary&lt;string, string&gt; { ["SerialNumber"] = serial });
/// </code>
/// </example>
public sealed class FleetProvisioningClient(TrellisDevice claimConnection) : IDisposable
{
    private readonly SemaphoreSlim _oneAtATime = new(1, 1);

    public void Dispose() => _oneAtATime.Dispose();

    /// <summary>A new key pair and certificate (PENDING_ACTIVATION until RegisterThing).</summary>
    public async Task<ProvisionedCertificate> CreateKeysAndCertificateAsync(CancellationToken cancellationToken = default) =>
        Certificate(await RequestAsync("$aws/certificates/create/json", [], cancellationToken));

    /// <summary>A certificate for the device's own key (the private key never leaves the device).</summary>
    public async Task<ProvisionedCertificate> CreateCertificateFromCsrAsync(string csrPem, CancellationToken cancellationToken = default) =>
        Certificate(await RequestAsync("$aws/certificates/create-from-csr/json", Encoding.UTF8.GetBytes(new JsonObject { ["certificateSigningRequest"] = csrPem }.ToJsonString()), cancellationToken));

    /// <summary>
    /// The whole first-boot step with a key made here: an EC P-256 key, a certificate from its CSR,
    /// then RegisterThing. Returns the thing, its certificate and the private key (PEM); the key
    /// never leaves this process. The server's rate limit (429) is waited out and tried again.
    /// </summary>
    public async Task<(RegisteredThing Thing, string CertificatePem, string PrivateKeyPem)> ProvisionWithNewKeyAsync(
        string templateName, string commonName, IReadOnlyDictionary<string, string>? parameters = null, CancellationToken cancellationToken = default)
    {
        using var key = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        var csr = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=" + commonName, key, System.Security.Cryptography.HashAlgorithmName.SHA256).CreateSigningRequestPem();
        while (true)
        {
            try
            {
                var certificate = await CreateCertificateFromCsrAsync(csr, cancellationToken);
                var thing = await RegisterThingAsync(templateName, certificate.OwnershipToken, parameters, cancellationToken);
                return (thing, certificate.CertificatePem, key.ExportPkcs8PrivateKeyPem());
            }
            catch (ProvisioningRejectedException e) when (e.StatusCode == 429 || e.ErrorCode is "ThrottlingException")
            {
                await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken); // the server's provisioning rate limit
            }
        }
    }

    /// <summary>Registers the thing through <paramref name="templateName"/>; the template decides the thing, its groups and policies.</summary>
    public async Task<RegisteredThing> RegisterThingAsync(string templateName, string ownershipToken, IReadOnlyDictionary<string, string>? parameters = null, CancellationToken cancellationToken = default)
    {
        var request = new JsonObject { ["certificateOwnershipToken"] = ownershipToken };
        if (parameters is not null)
        {
            request["parameters"] = new JsonObject([.. parameters.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value))]);
        }

        var reply = await RequestAsync($"$aws/provisioning-templates/{templateName}/provision/json", Encoding.UTF8.GetBytes(request.ToJsonString()), cancellationToken);
        var configuration = new Dictionary<string, string>(StringComparer.Ordinal);
        if (reply["deviceConfiguration"] is JsonObject map)
        {
            foreach (var (key, value) in map)
            {
                configuration[key] = value?.GetValue<string>() ?? string.Empty;
            }
        }

        return new RegisteredThing(reply["thingName"]?.GetValue<string>(), configuration);
    }

    private static ProvisionedCertificate Certificate(JsonObject reply) => new(
        reply["certificateId"]!.GetValue<string>(),
        reply["certificatePem"]!.GetValue<string>(),
        reply["privateKey"]?.GetValue<string>(),
        reply["certificateOwnershipToken"]!.GetValue<string>());

    /// <summary>Publishes a request and waits for its accepted or rejected reply (one request at a time: replies carry no correlation).</summary>
    private async Task<JsonObject> RequestAsync(string topic, byte[] payload, CancellationToken cancellationToken)
    {
        await _oneAtATime.WaitAsync(cancellationToken);
        try
        {
            var reply = new TaskCompletionSource<(string Topic, JsonObject Body)>(TaskCreationOptions.RunContinuationsAsynchronously);
            void OnReply(string replyTopic, ReadOnlySequence<byte> body)
            {
                try
                {
                    reply.TrySetResult((replyTopic, JsonNode.Parse(body.ToArray()) as JsonObject ?? []));
                }
                catch (JsonException e)
                {
                    reply.TrySetException(e);
                }
            }

            await claimConnection.SubscribeAsync([topic + "/accepted", topic + "/rejected"], OnReply, cancellationToken);
            await claimConnection.PublishAsync(topic, payload, 1, cancellationToken);
            var (replyTopic, body) = await reply.Task.WaitAsync(claimConnection.Options.RequestTimeout, cancellationToken);
            if (replyTopic.EndsWith("/rejected", StringComparison.Ordinal))
            {
                throw new ProvisioningRejectedException(
                    body["statusCode"]?.GetValue<int>() ?? 0, body["errorCode"]?.GetValue<string>() ?? "Unknown", body["errorMessage"]?.GetValue<string>() ?? string.Empty);
            }

            return body;
        }
        finally
        {
            _oneAtATime.Release();
        }
    }
}

/// <summary>The provisioning service refused a request (the <c>…/rejected</c> document).</summary>
public sealed class ProvisioningRejectedException : Exception
{
    public ProvisioningRejectedException()
    {
    }

    public ProvisioningRejectedException(string message)
        : base(message)
    {
    }

    public ProvisioningRejectedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public ProvisioningRejectedException(int statusCode, string errorCode, string message)
        : base($"provisioning request rejected: {statusCode} {errorCode}: {message}")
    {
        StatusCode = statusCode;
        ErrorCode = errorCode;
        Reason = message;
    }

    /// <summary>HTTP-style status: 400 bad request or token, 403 refused by the pre-provisioning hook, 404 no such template.</summary>
    public int StatusCode { get; }

    /// <summary>InvalidCertificateOwnershipToken, InvalidParameters, AccessDenied, ResourceNotFound …</summary>
    public string? ErrorCode { get; }

    public string? Reason { get; }
}
