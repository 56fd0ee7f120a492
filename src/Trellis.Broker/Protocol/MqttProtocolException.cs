namespace Trellis.Broker.Protocol;

/// <summary>
/// Raised by the decoder for input that breaks the protocol. It never leaves the codec boundary:
/// <see cref="MqttDecoder"/> turns it into a <see cref="DecodeError"/> value.
/// </summary>
internal sealed class MqttProtocolException(byte reasonCode, string message) : Exception(message)
{
    public byte ReasonCode { get; } = reasonCode;
}
