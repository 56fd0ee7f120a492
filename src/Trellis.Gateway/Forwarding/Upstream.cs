using System.Buffers;
using Microsoft.Extensions.Logging;
using MQTTnet;
using MQTTnet.Protocol;
using Trellis.Device;

namespace Trellis.Gateway.Forwarding;

/// <summary>
/// The gateway's connection to its Trellis server: MQTT 5 over TLS with the gateway's certificate,
/// a persistent session (so messages for the leaves wait upstream while the gateway is away), and
/// reconnects with back-off. It forwards the disk queue in order, up to <see cref="Window"/>
/// messages in flight, each numbered with the user property <c>trellis-seq: STREAM:SEQ</c>, and
/// removes a message only on its PUBACK. After any reconnect it sends again everything still
/// queued; the server recognises what it already has by the number. Messages for the leaves
/// (<see cref="Filters"/>) are handed to <see cref="Downstream"/>.
/// </summary>
public sealed partial class Upstream(DeviceOptions identity, ForwardStore queue, ILogger logger) : IAsyncDisposable
{
    /// <summary>Messages sent and not yet acknowledged at most.</summary>
    public const int Window = 256;

    private readonly IMqttClient _client = new MqttClientFactory().CreateMqttClient();
    private long _forwarded;
    private long _rejected;
    private string? _lastFailure;

    /// <summary>Topic filters subscribed upstream (NoLocal: the gateway's own messages do not come back).</summary>
    public List<string> Filters { get; } = [];

    /// <summary>Receives each message from upstream on <see cref="Filters"/>.</summary>
    public Func<string, byte[], Task>? Downstream { get; set; }

    public bool IsConnected => _client.IsConnected;

    /// <summary>
    /// Run after each connect, before the queue is forwarded (for at most <see cref="ConnectedGrace"/>,
    /// then forwarding starts beside it): the leaves' registration.
    /// </summary>
    public Func<CancellationToken, Task>? Connected { get; set; }

    /// <summary>How long forwarding waits for <see cref="Connected"/> after a connect.</summary>
    public static readonly TimeSpan ConnectedGrace = TimeSpan.FromSeconds(5);

    /// <summary>Messages upstream acknowledged.</summary>
    public long Forwarded => Interlocked.Read(ref _forwarded);

    /// <summary>Messages upstream refused for good (not authorized, invalid topic): logged and removed.</summary>
    public long Rejected => Interlocked.Read(ref _rejected);

    public async Task RunAsync(CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(identity);
        _client.ApplicationMessageReceivedAsync += e => Downstream is { } handler
            ? handler(e.ApplicationMessage.Topic, e.ApplicationMessage.Payload.ToArray())
            : Task.CompletedTask;
        var backoff = TimeSpan.FromSeconds(1);
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await ConnectAsync(ct);
                backoff = TimeSpan.FromSeconds(1);
                _lastFailure = null;
                if (Connected is { } connected)
                {
                    // Leaves registered first, so their things exist when their messages arrive; a
                    // registration that hangs (a policy without iot:Receive) does not stop the queue.
                    var hook = connected(ct);
                    await Task.WhenAny(hook, Task.Delay(ConnectedGrace, ct));
                }

                await ForwardAsync(ct);
            }
            catch (Exception e) when (!ct.IsCancellationRequested && e is not OutOfMemoryException)
            {
                var reason = Explain(e);
                if (reason != _lastFailure)
                {
                    LogUpstreamDown(logger, identity.Host, identity.Port, reason, queue.Count);
                    _lastFailure = reason;
                }

                try
                {
                    await _client.DisconnectAsync(new MqttClientDisconnectOptions(), CancellationToken.None);
                }
                catch (Exception)
                {
                    // already gone
                }

                await Task.Delay(backoff, ct).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(15).Ticks));
            }
        }
    }

    /// <summary>Publishes one message straight upstream at QoS 1 (not through the queue); a refusal is an <see cref="InvalidOperationException"/>.</summary>
    public async Task PublishAsync(string topic, byte[] payload, CancellationToken ct)
    {
        var message = new MqttApplicationMessageBuilder()
            .WithTopic(topic)
            .WithPayload(payload)
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce)
            .Build();
        var result = await _client.PublishAsync(message, ct);
        if (result.ReasonCode is not (MqttClientPublishReasonCode.Success or MqttClientPublishReasonCode.NoMatchingSubscribers))
        {
            throw new InvalidOperationException($"upstream answered {result.ReasonCode} on {topic}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_client.IsConnected)
        {
            try
            {
                await _client.DisconnectAsync(new MqttClientDisconnectOptions(), CancellationToken.None);
            }
            catch (Exception e) when (e is MQTTnet.Exceptions.MqttCommunicationException or OperationCanceledException)
            {
            }
        }

        _client.Dispose();
    }

    private async Task ConnectAsync(CancellationToken ct)
    {
        var options = new MqttClientOptionsBuilder()
            .WithTcpServer(identity.Host, identity.Port)
            .WithProtocolVersion(MQTTnet.Formatter.MqttProtocolVersion.V500)
            .WithClientId(identity.ClientId ?? identity.ThingName)
            .WithCleanStart(false)
            .WithSessionExpiryInterval(24 * 3600)
            .WithKeepAlivePeriod(TimeSpan.FromSeconds(30))
            .WithTimeout(TimeSpan.FromSeconds(10))
            .WithTlsOptions(tls => tls
                .UseTls()
                .WithTargetHost(identity.Host)
                .WithClientCertificates([identity.Certificate])
                .WithCertificateValidationHandler(e => e.Certificate is not null && TrellisDevice.ValidateServer(e.Certificate, e.SslPolicyErrors, identity.CaCertificate)))
            .Build();
        var result = await _client.ConnectAsync(options, ct);
        if (result.ResultCode != MqttClientConnectResultCode.Success)
        {
            throw new InvalidOperationException($"CONNACK {result.ResultCode} {result.ReasonString}");
        }

        LogConnected(logger, identity.Host, identity.Port, queue.Count);
        if (Filters.Count > 0)
        {
            var subscribe = new MqttClientSubscribeOptionsBuilder();
            foreach (var filter in Filters)
            {
                subscribe.WithTopicFilter(f => f.WithTopic(filter).WithAtLeastOnceQoS().WithNoLocal());
            }

            var granted = await _client.SubscribeAsync(subscribe.Build(), ct);
            foreach (var item in granted.Items.Where(i => (int)i.ResultCode > 2))
            {
                LogSubscribeRefused(logger, item.TopicFilter.Topic, item.ResultCode.ToString());
            }
        }
    }

    /// <summary>Sends the queue in order while connected; returns (throws) when the connection goes.</summary>
    private async Task ForwardAsync(CancellationToken ct)
    {
        var cursor = 0L;
        var inflight = new Queue<(long Seq, string Topic, Task<MqttClientPublishResult> Ack)>();
        var stream = queue.StreamId;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            if (!_client.IsConnected)
            {
                throw new MQTTnet.Exceptions.MqttCommunicationException("the connection closed");
            }

            var appended = queue.AppendedAsync();
            var batch = inflight.Count < Window ? queue.ReadAfter(cursor, Window - inflight.Count) : [];
            foreach (var m in batch)
            {
                var message = new MqttApplicationMessageBuilder()
                    .WithTopic(m.Topic)
                    .WithPayload(m.Payload)
                    .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce)
                    .WithUserProperty("trellis-seq", System.Text.Encoding.UTF8.GetBytes($"{stream}:{m.Seq}"))
                    .Build();
                inflight.Enqueue((m.Seq, m.Topic, _client.PublishAsync(message, ct)));
                cursor = m.Seq;
            }

            while (inflight.TryPeek(out var head) && head.Ack.IsCompleted)
            {
                inflight.Dequeue();
                Settle(head.Seq, head.Topic, await head.Ack);
            }

            if (inflight.Count >= Window || (batch.Count == 0 && inflight.Count > 0))
            {
                var head = inflight.Dequeue();
                Settle(head.Seq, head.Topic, await head.Ack);
            }
            else if (batch.Count == 0)
            {
                await Task.WhenAny(appended, Task.Delay(1000, ct));
            }
        }
    }

    private void Settle(long seq, string topic, MqttClientPublishResult result)
    {
        switch (result.ReasonCode)
        {
            case MqttClientPublishReasonCode.Success or MqttClientPublishReasonCode.NoMatchingSubscribers:
                Interlocked.Increment(ref _forwarded);
                queue.Remove(seq);
                break;
            case MqttClientPublishReasonCode.NotAuthorized or MqttClientPublishReasonCode.TopicNameInvalid or MqttClientPublishReasonCode.PayloadFormatInvalid:
                // It would be refused again forever: keeping it would stop the queue behind it.
                Interlocked.Increment(ref _rejected);
                LogRefused(logger, topic, result.ReasonCode.ToString(), identity.ThingName);
                queue.Remove(seq);
                break;
            default:
                throw new InvalidOperationException($"upstream answered a publish on '{topic}' with {result.ReasonCode} {result.ReasonString}; sending again after a reconnect");
        }
    }

    private string Explain(Exception e)
    {
        var inner = e;
        while (inner.InnerException is not null)
        {
            inner = inner.InnerException;
        }

        return inner switch
        {
            System.Security.Authentication.AuthenticationException or IOException when e.Message.Contains("TLS", StringComparison.OrdinalIgnoreCase) || inner is System.Security.Authentication.AuthenticationException =>
                $"the TLS handshake failed ({inner.Message}): check that the gateway's certificate is active upstream and that ca.pem in its identity folder is the server's CA",
            _ when e.Message.Contains("NotAuthorized", StringComparison.Ordinal) || e.Message.Contains("BadUserName", StringComparison.Ordinal) =>
                $"upstream refused the gateway ({e.Message}): check its certificate's status and that its policy allows iot:Connect for client id {identity.ClientId ?? identity.ThingName}",
            _ => e.Message == inner.Message ? e.Message : $"{e.Message} ({inner.Message})",
        };
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Connected upstream to {Host}:{Port}; {Queued} message(s) queued to forward")]
    private static partial void LogConnected(ILogger logger, string host, int port, long queued);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Upstream {Host}:{Port} is not reachable: {Reason}. Leaves' messages stay queued on disk ({Queued} now) and are sent when it is back")]
    private static partial void LogUpstreamDown(ILogger logger, string host, int port, string reason, long queued);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Upstream refused a message on {Topic} ({Reason}); it is dropped from the queue. Let the policy of gateway {Gateway} allow iot:Publish on that topic")]
    private static partial void LogRefused(ILogger logger, string topic, string reason, string gateway);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Upstream refused the subscription to {Filter} ({Reason}): leaves will not receive its messages. Let the gateway's policy allow iot:Subscribe and iot:Receive on it")]
    private static partial void LogSubscribeRefused(ILogger logger, string filter, string reason);
}
