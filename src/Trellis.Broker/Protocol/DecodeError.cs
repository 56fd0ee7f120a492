namespace Trellis.Broker.Protocol;

/// <summary>Why a packet could not be decoded: the MQTT 5 reason code to send and a message for logs.</summary>
internal readonly record struct DecodeError(byte ReasonCode, string Message);
