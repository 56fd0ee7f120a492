using System.Buffers;
using System.Collections.Concurrent;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using MQTTnet;
using MQTTnet.Protocol;

namespace Trellis.Device;

/// <summary>
/// A device connected to Trellis over MQTT with TLS and its X.509 certificate. Hands out shadow
/// clients and publishes telemetry. One instance per device connection; thread-safe.
/// </summary>
/// <example>
/// <code>
/// var options = DeviceOptions.FromPemFiles("localhost", 8883, "lamp-1", "lamp-1.cert.pem", "lamp-1.private.key", "ca.pem");
/// await using var device = await TrellisDevice.ConnectAsync(options);
/// var shadow = device.Shadow();
/// shadow.OnDelta(delta => { Apply(delta); return delta; });   // applied state is reported back
/// await shadow.StartAsync();
/// </code>
/// </example>
public sealed class TrellisDevice : IAsyncDisposable
{
    private readonly IMqttClient _client;
    private readonly ConcurrentDictionary<string, Action<string, ReadOnlySequence<byte>>> _routes = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ShadowClient> _shadows = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Action<string, ReadOnlySequence<byte>>> _prefixRoutes = new(StringComparer.Ordinal);
    private JobsClient? _jobs;

    private TrellisDevice(IMqttClient client, DeviceOptions options)
    {
        _client = client;
        Options = options;
        _client.ApplicationMessageReceivedAsync += e =>
        {
            var topic = e.ApplicationMessage.Topic;
            if (_routes.TryGetValue(topic, out var route))
            {
                route(topic, e.ApplicationMessage.Payload);
                return Task.CompletedTask;
            }

            foreach (var (prefix, handler) in _prefixRoutes)
            {
                if (topic.StartsWith(prefix, StringComparison.Ordinal))
                {
                    handler(topic, e.ApplicationMessage.Payload);
                    break;
                }
            }

            return Task.CompletedTask;
        };
    }

    public DeviceOptions Options { get; }

    public string ThingName => Options.ThingName;

    /// <summary>The underlying MQTTnet client, for anything the SDK does not wrap.</summary>
    public IMqttClient Mqtt => _client;

    public bool IsConnected => _client.IsConnected;

    /// <summary>Connects with the device certificate; the server certificate must chain to <see cref="DeviceOptions.CaCertificate"/> and name the host.</summary>
    public static async Task<TrellisDevice> ConnectAsync(DeviceOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var client = new MqttClientFactory().CreateMqttClient();
        var device = new TrellisDevice(client, options);
        var mqttOptions = new MqttClientOptionsBuilder()
            .WithTcpServer(options.Host, options.Port)
            .WithClientId(options.ClientId ?? options.ThingName)
            .WithKeepAlivePeriod(options.KeepAlive)
            .WithCleanSession(true)
            .WithTlsOptions(tls => tls
                .UseTls()
                .WithTargetHost(options.Host)
                .WithClientCertificates([options.Certificate])
                .WithCertificateValidationHandler(e => ValidateServer(e.Certificate, e.SslPolicyErrors, options.CaCertificate)))
            .Build();
        try
        {
            await client.ConnectAsync(mqttOptions, cancellationToken);
        }
        catch
        {
            client.Dispose();
            throw;
        }

        return device;
    }

    /// <summary>The classic shadow (<paramref name="name"/> null) or a named shadow of this thing.</summary>
    public ShadowClient Shadow(string? name = null) =>
        _shadows.GetOrAdd(name ?? string.Empty, n => new ShadowClient(this, n.Length == 0 ? null : n));

    /// <summary>The device side of jobs (<c>$aws/things/{thing}/jobs/…</c>): next pending job, start, updates, notifications.</summary>
    public JobsClient Jobs() => _jobs ??= new JobsClient(this);

    /// <summary>Publishes a message (telemetry, events) at QoS 0 or 1; with QoS 1 it completes on the broker's PUBACK.</summary>
    public async Task PublishAsync(string topic, ReadOnlyMemory<byte> payload, int qos = 1, CancellationToken cancellationToken = default)
    {
        var message = new MqttApplicationMessageBuilder()
            .WithTopic(topic)
            .WithPayload(payload.ToArray())
            .WithQualityOfServiceLevel((MqttQualityOfServiceLevel)qos)
            .Build();
        var result = await _client.PublishAsync(message, cancellationToken);
        if (!result.IsSuccess)
        {
            throw new InvalidOperationException($"publish to '{topic}' was refused: {result.ReasonCode} {result.ReasonString}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_client.IsConnected)
        {
            try
            {
                await _client.DisconnectAsync();
            }
            catch (MQTTnet.Exceptions.MqttCommunicationException)
            {
            }
        }

        _client.Dispose();
    }

    /// <summary>Subscribes to exact topics (QoS 1) and routes their messages to <paramref name="handler"/>.</summary>
    internal async Task SubscribeAsync(IReadOnlyList<string> topics, Action<string, ReadOnlySequence<byte>> handler, CancellationToken cancellationToken)
    {
        var builder = new MqttClientSubscribeOptionsBuilder();
        foreach (var topic in topics)
        {
            _routes[topic] = handler;
            builder.WithTopicFilter(topic, MqttQualityOfServiceLevel.AtLeastOnce);
        }

        EnsureGranted(await _client.SubscribeAsync(builder.Build(), cancellationToken));
    }

    /// <summary>Subscribes to topic filters (QoS 1) and routes every message whose topic starts with <paramref name="prefix"/> to <paramref name="handler"/>.</summary>
    internal async Task SubscribeFiltersAsync(IReadOnlyList<string> filters, string prefix, Action<string, ReadOnlySequence<byte>> handler, CancellationToken cancellationToken)
    {
        _prefixRoutes[prefix] = handler;
        var builder = new MqttClientSubscribeOptionsBuilder();
        foreach (var filter in filters)
        {
            builder.WithTopicFilter(filter, MqttQualityOfServiceLevel.AtLeastOnce);
        }

        EnsureGranted(await _client.SubscribeAsync(builder.Build(), cancellationToken));
    }

    private static void EnsureGranted(MqttClientSubscribeResult result)
    {
        foreach (var item in result.Items)
        {
            if (item.ResultCode > MqttClientSubscribeResultCode.GrantedQoS2)
            {
                throw new InvalidOperationException($"subscription to '{item.TopicFilter.Topic}' was refused ({item.ResultCode}): check the thing's policy allows iot:Subscribe and iot:Receive on it");
            }
        }
    }

    public static bool ValidateServer(X509Certificate certificate, SslPolicyErrors errors, X509Certificate2 ca)
    {
        if ((errors & (SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateNotAvailable)) != 0)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var server = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        return chain.Build(server);
    }
}
