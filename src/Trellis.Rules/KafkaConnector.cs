using System.Text;
using System.Text.Json.Nodes;
using Confluent.Kafka;

namespace Trellis.Rules;

/// <summary>
/// Kafka (AWS's kafka action shape): an idempotent producer with acks=all per bootstrap address,
/// one message in flight per target so order is kept; a message counts as delivered when the
/// broker acknowledged it.
/// </summary>
public sealed class KafkaConnector : IConnector
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private readonly IProducer<byte[]?, byte[]> _producer;

    public KafkaConnector(IReadOnlyDictionary<string, string> clientProperties)
    {
        var config = new ProducerConfig(clientProperties.ToDictionary(p => p.Key, p => p.Value))
        {
            Acks = Acks.All,
            EnableIdempotence = true,
            MessageTimeoutMs = (int)Timeout.TotalMilliseconds,
            ClientId = "trellis-rules",
        };
        // librdkafka's own log lines would go to stderr on every reconnect attempt; failures reach the
        // dispatcher as ProduceAsync errors, which it logs with the outbox backlog.
        _producer = new ProducerBuilder<byte[]?, byte[]>(config)
            .SetLogHandler((_, _) => { })
            .SetErrorHandler((_, _) => { })
            .Build();
    }

    public async Task<(int Delivered, string? Error)> SendAsync(IReadOnlyList<OutboxEntry> batch, CancellationToken cancellationToken)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            var entry = batch[i];
            var extras = entry.Headers is null ? null : JsonNode.Parse(entry.Headers) as JsonObject;
            var message = new Message<byte[]?, byte[]>
            {
                Key = extras?["key"]?.GetValue<string>() is { } key ? Encoding.UTF8.GetBytes(key) : null,
                Value = entry.Payload,
                Headers = [],
            };
            foreach (var header in extras?["headers"] as JsonArray ?? [])
            {
                message.Headers.Add(header!["key"]!.GetValue<string>(), Encoding.UTF8.GetBytes(header["value"]!.GetValue<string>()));
            }

            try
            {
                var partition = extras?["partition"]?.GetValue<int>() is { } p ? new Partition(p) : Partition.Any;
                await _producer.ProduceAsync(new TopicPartition(entry.Address, partition), message, cancellationToken);
            }
            catch (KafkaException e)
            {
                return (i, $"Kafka topic {entry.Address}: {e.Error.Reason}");
            }
        }

        return (batch.Count, null);
    }

    public ValueTask DisposeAsync()
    {
        _producer.Flush(TimeSpan.FromSeconds(2));
        _producer.Dispose();
        return ValueTask.CompletedTask;
    }
}
