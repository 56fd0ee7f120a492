namespace Trellis.Broker.Protocol;

/// <summary>What <see cref="MqttFrame.TryRead"/> found at the head of the input.</summary>
internal enum FrameStatus
{
    Incomplete,
    Complete,
    MalformedLength,
    TooLarge,
}
