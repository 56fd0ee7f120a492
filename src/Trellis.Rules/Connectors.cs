using System.Text.Json.Nodes;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Trellis.Rules;

/// <summary>Delivers outbox messages to one kind of external target.</summary>
public interface IConnector : IAsyncDisposable
{
    /// <summary>Sends a batch in order; returns how many were delivered (a prefix) and, if not all, why the next one failed.</summary>
    Task<(int Delivered, string? Error)> SendAsync(IReadOnlyList<OutboxEntry> batch, CancellationToken cancellationToken);
}

/// <summary>
/// Webhooks: POST of the rule's output to the URL, with the action's headers; any 2xx is delivered.
/// A message whose destination was disabled after it was queued waits (until enabled, or until it
/// expires to the error action).
/// </summary>
public sealed class HttpConnector(HttpClient http, Func<string, string?>? refusal = null) : IConnector
{
    public async Task<(int Delivered, string? Error)> SendAsync(IReadOnlyList<OutboxEntry> batch, CancellationToken cancellationToken)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            var entry = batch[i];
            if (refusal?.Invoke(entry.Address) is { } refused)
            {
                return (i, refused);
            }

            using var request = new HttpRequestMessage(HttpMethod.Post, entry.Address) { Content = new ByteArrayContent(entry.Payload) };
            request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
            if (entry.Headers is not null && JsonNode.Parse(entry.Headers) is JsonArray headers)
            {
                foreach (var header in headers)
                {
                    request.Headers.TryAddWithoutValidation(header!["key"]!.GetValue<string>(), header["value"]!.GetValue<string>());
                }
            }

            try
            {
                using var response = await http.SendAsync(request, cancellationToken);
                if (!response.IsSuccessStatusCode)
                {
                    return (i, $"{entry.Address} answered HTTP {(int)response.StatusCode}");
                }
            }
            catch (HttpRequestException e)
            {
                return (i, $"{entry.Address}: {e.Message}");
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                return (i, $"{entry.Address} did not answer in time");
            }
        }

        return (batch.Count, null);
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

/// <summary>
/// NATS: core publish followed by a PING round trip (the server has then read every message before
/// it), or JetStream publish with its acknowledgement. A batch cut short is sent again from its
/// first unconfirmed message: at least once, in order.
/// </summary>
public sealed class NatsConnector(string url, bool jetStream) : IConnector
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);
    private readonly NatsConnection _connection = new(new NatsOpts { Url = url, Name = "trellis-rules", MaxReconnectRetry = -1 });

    public async Task<(int Delivered, string? Error)> SendAsync(IReadOnlyList<OutboxEntry> batch, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Timeout);
        try
        {
            await _connection.ConnectAsync();
            if (jetStream)
            {
                var js = new NatsJSContext(_connection);
                for (var i = 0; i < batch.Count; i++)
                {
                    // The outbox id as Nats-Msg-Id: a batch sent again after a lost ack is not stored twice.
                    var ack = await js.PublishAsync(batch[i].Address, batch[i].Payload, headers: new NatsHeaders { ["Nats-Msg-Id"] = batch[i].Id.ToString(System.Globalization.CultureInfo.InvariantCulture) }, cancellationToken: timeout.Token);
                    if (ack.Error is { } error)
                    {
                        return (i, $"JetStream refused {batch[i].Address}: {error.Description}");
                    }
                }

                return (batch.Count, null);
            }

            foreach (var entry in batch)
            {
                await _connection.PublishAsync(entry.Address, entry.Payload, cancellationToken: timeout.Token);
            }

            await _connection.PingAsync(timeout.Token);
            return (batch.Count, null);
        }
        catch (Exception e) when (e is NatsException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return (0, $"{url}: {(e is OperationCanceledException ? "no answer within 5 s" : e.Message)}");
        }
    }

    public ValueTask DisposeAsync() => _connection.DisposeAsync();
}
