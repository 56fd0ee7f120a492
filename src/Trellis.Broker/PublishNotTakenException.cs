namespace Trellis.Broker;

/// <summary>
/// Thrown by an <see cref="IPublishObserver"/> that could not take a client's QoS 1/2 message (a
/// gateway's disk queue that is full or failing). The publish is then not acknowledged as taken:
/// an MQTT 5 client gets <see cref="ReasonCode"/> in its PUBACK/PUBREC; an MQTT 3.1.1 client, which
/// has no negative acknowledgement, is disconnected without one and sends the message again.
/// </summary>
public sealed class PublishNotTakenException : Exception
{
    public PublishNotTakenException()
    {
    }

    public PublishNotTakenException(string message)
        : base(message)
    {
    }

    public PublishNotTakenException(string message, Exception inner)
        : base(message, inner)
    {
    }

    public PublishNotTakenException(byte reasonCode, string message, Exception? inner = null)
        : base(message, inner)
    {
        ReasonCode = reasonCode;
    }

    /// <summary>The MQTT 5 reason code (default 0x97 Quota exceeded).</summary>
    public byte ReasonCode { get; } = 0x97;
}
