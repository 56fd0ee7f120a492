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

/// <summary>
/// A rule as CreateTopicRule and ReplaceTopicRule give it (AWS's TopicRulePayload). Each action is
/// one target in AWS's union shape (<c>{"republish": {"topic": …}}</c>), checked in full when the
/// rule is saved.
/// </summary>
public sealed record TopicRuleInput(
    string Sql,
    IReadOnlyList<JsonObject> Actions,
    string? Description = null,
    bool Disabled = false,
    string? SqlVersion = null,
    JsonObject? ErrorAction = null);
