using Microsoft.Extensions.Logging;
using Trellis.Broker;
using Trellis.Gateway.Forwarding;
using Trellis.Gateway.Rules;

namespace Trellis.Gateway.Local;

/// <summary>
/// Takes every message a leaf publishes on the local listener into the disk queue. A QoS 1/2
/// message is refused on the packet thread, so the broker holds the leaf's PUBACK until
/// <see cref="ObserveAsync"/> has it on disk; QoS 0 is appended without holding anything (it
/// promises nothing). Messages the gateway itself publishes locally (from upstream) are not
/// sent back up.
/// </summary>
internal sealed partial class QueueObserver(ForwardStore queue, EdgeRules? rules, ILogger logger) : IPublishObserver
{
    public bool Wants(string topic) => true;

    public bool TryObserve(in PublishedMessage message, bool mayRefuse)
    {
        if (message.ClientId is null)
        {
            return true;
        }

        if (message.Qos > 0 && mayRefuse)
        {
            return false;
        }

        _ = AppendQos0Async(message);
        return true;
    }

    public async ValueTask ObserveAsync(PublishedMessage message, CancellationToken cancellationToken)
    {
        try
        {
            await TakeAsync(message, cancellationToken);
        }
        catch (QueueFullException e)
        {
            LogNotQueued(logger, message.ClientId!, message.Topic, e.Message);
            throw new PublishNotTakenException(0x97, e.Message, e);
        }
    }

    private async Task AppendQos0Async(PublishedMessage message)
    {
        try
        {
            await TakeAsync(message, CancellationToken.None);
        }
        catch (Exception e) when (e is QueueFullException or ObjectDisposedException)
        {
            LogNotQueued(logger, message.ClientId!, message.Topic, e.Message);
        }
    }

    /// <summary>Through the local rules when there are any, else straight into the queue.</summary>
    private Task TakeAsync(PublishedMessage message, CancellationToken ct) => rules is null
        ? queue.AppendAsync(message.Topic, message.Payload.ToArray(), message.ClientId!, message.ReceivedAtMs, ct)
        : rules.TakeAsync(queue, message.Topic, message.Payload.ToArray(), message.ClientId!, message.ReceivedAtMs, ct);

    [LoggerMessage(Level = LogLevel.Warning, Message = "A message of leaf {Leaf} on {Topic} was not queued: {Reason}. Free disk space or raise --queue-max-mb")]
    private static partial void LogNotQueued(ILogger logger, string leaf, string topic, string reason);
}
