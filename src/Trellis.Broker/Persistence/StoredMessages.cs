using System.Runtime.InteropServices;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Trellis.Broker.Protocol;

namespace Trellis.Broker.Persistence;

/// <summary>How a message's columns are written and read back (retained messages and session journals).</summary>
internal static class StoredMessages
{
    /// <summary>The payload as an array SQLite can bind: the message's own when it owns one exactly.</summary>
    public static byte[] PayloadArray(ReadOnlyMemory<byte> payload) =>
        MemoryMarshal.TryGetArray(payload, out var segment) && segment.Offset == 0 && segment.Count == segment.Array!.Length
            ? segment.Array
            : payload.ToArray();

    public static string? PropertiesJson(MqttMessage message) =>
        message.Properties is null ? null : JsonSerializer.Serialize(StoredProperties.From(message.Properties), StoreJsonContext.Default.StoredProperties);

    /// <summary>Reads a message from columns topic, qos, payload, properties, sender, received_ms starting at <paramref name="first"/>.</summary>
    public static MqttMessage Read(SqliteDataReader reader, int first, bool retain) => new()
    {
        Topic = reader.GetString(first),
        Qos = (byte)reader.GetInt32(first + 1),
        Payload = (byte[])reader.GetValue(first + 2),
        Properties = reader.IsDBNull(first + 3) ? null : JsonSerializer.Deserialize(reader.GetString(first + 3), StoreJsonContext.Default.StoredProperties)?.ToProperties(),
        SenderClientId = reader.GetString(first + 4),
        ReceivedAtMs = reader.GetInt64(first + 5),
        Retain = retain,
    };
}
