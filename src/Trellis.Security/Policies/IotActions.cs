namespace Trellis.Security.Policies;

/// <summary>The AWS IoT policy actions the broker enforces, as a bit set.</summary>
[Flags]
public enum IotActions
{
    None = 0,
    Connect = 1,
    Publish = 2,
    Subscribe = 4,
    Receive = 8,
    RetainPublish = 16,
    Other = 32,
}
