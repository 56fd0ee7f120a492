using System.Text.Json.Nodes;

namespace Trellis.Rules;

/// <summary>A topic rule as stored and described (AWS's TopicRule).</summary>
public sealed record TopicRuleRecord(
    string Name,
    string Arn,
    string Sql,
    string TopicPattern,
    string? Description,
    bool Disabled,
    string SqlVersion,
    JsonArray Actions,
    JsonObject? ErrorAction,
    long CreatedMs,
    long UpdatedMs);
