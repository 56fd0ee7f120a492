namespace Trellis.Rules.Sql;

/// <summary>One message as a rule sees it: its topic and payload, who sent it and when.</summary>
public sealed record RuleContext
{
    public required string Topic { get; init; }

    /// <summary>The payload parsed as JSON (object, array or value), or the raw bytes when it is not JSON.</summary>
    public required object? Payload { get; init; }

    public ReadOnlyMemory<byte> RawPayload { get; init; }

    /// <summary>The MQTT client id, or null when the message did not come over MQTT (clientid() then says "n/a").</summary>
    public string? ClientId { get; init; }

    /// <summary>The sender's principal: certificate id, token id or user name.</summary>
    public string? Principal { get; init; }

    /// <summary>When the rules engine saw the message, epoch milliseconds.</summary>
    public long TimestampMs { get; init; }

    public string AccountId { get; init; } = "000000000000";

    /// <summary>The same message with <paramref name="payload"/> in place of its payload (a nested query's element).</summary>
    public RuleContext WithPayload(object? payload) => this with { Payload = payload };

    /// <summary>Parses a payload: JSON when it is JSON, otherwise the bytes themselves.</summary>
    public static object? ParsePayload(ReadOnlyMemory<byte> payload)
    {
        if (payload.IsEmpty)
        {
            return payload.ToArray();
        }

        try
        {
            return SqlValues.FromNode(System.Text.Json.Nodes.JsonNode.Parse(payload.Span));
        }
        catch (System.Text.Json.JsonException)
        {
            return payload.ToArray();
        }
    }
}
