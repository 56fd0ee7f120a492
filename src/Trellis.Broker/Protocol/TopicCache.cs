using System.Text;

namespace Trellis.Broker.Protocol;

/// <summary>The last valid topic a connection published to, as bytes and as a string. One per connection, used by its read loop only.</summary>
internal sealed class TopicCache
{
    private byte[]? _bytes;
    private string? _value;

    public bool TryGet(ReadOnlySpan<byte> raw, out string topic)
    {
        if (_bytes is not null && raw.Length > 0 && raw.SequenceEqual(_bytes))
        {
            topic = _value!;
            return true;
        }

        topic = string.Empty;
        return false;
    }

    public void Remember(string topic)
    {
        if (topic.Length == 0)
        {
            return;
        }

        _value = topic;
        _bytes = Encoding.UTF8.GetBytes(topic);
    }
}
