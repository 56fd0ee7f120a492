using System.Text.Json.Nodes;
using Trellis.Core.Errors;
using Trellis.Core.Topics;
using Trellis.Rules.Sql;

namespace Trellis.Rules;

/// <summary>Where a rule's republished messages go: the broker, as a server publish tagged with the rule.</summary>
public interface IRulePublisher
{
    void Publish(string topic, byte[] payload, byte qos, bool retain, string origin);
}

/// <summary>One compiled action of a rule.</summary>
public interface IRuleAction
{
    /// <summary>AWS's name of the action in error reports, e.g. RepublishAction.</summary>
    string Name { get; }

    /// <summary>Runs the action for one output; an exception is the failure reported to the error action.</summary>
    void Execute(RuleContext context, byte[] output, string ruleName);
}

/// <summary>Parses and checks actions in AWS's shape (<c>{"republish": {"topic": …, "qos": …}}</c>).</summary>
public static class RuleActions
{
    public static readonly IReadOnlyList<string> Supported = ["republish"];

    public static Result<IRuleAction> Compile(JsonNode? action, IRulePublisher publisher, string where)
    {
        if (action is not JsonObject obj || obj.Count != 1)
        {
            return new TrellisError.InvalidRequest($"{where} must be an object with exactly one action, such as {{\"republish\": {{\"topic\": \"…\", \"roleArn\": \"…\"}}}}.");
        }

        var (kind, settings) = obj.First();
        if (kind != "republish")
        {
            return new TrellisError.InvalidRequest(
                $"{where}: the action '{kind}' is not supported by Trellis (supported: {string.Join(", ", Supported)}). AWS-only targets such as lambda, sqs or dynamoDB have no counterpart here.");
        }

        if (settings is not JsonObject republish || republish["topic"] is not JsonValue topicValue || !topicValue.TryGetValue<string>(out var topic) || topic.Length == 0)
        {
            return new TrellisError.InvalidRequest($"{where}.republish.topic is required.");
        }

        RuleTemplate template;
        try
        {
            template = RuleTemplate.Compile(topic);
        }
        catch (SqlSyntaxException e)
        {
            return new TrellisError.InvalidRequest($"{where}.republish.topic: {e.Message}");
        }

        if (template.IsConstant && !TopicValidator.IsValidTopicName(topic))
        {
            return new TrellisError.InvalidRequest($"{where}.republish.topic '{topic}' is not a valid topic name (no + or #).");
        }

        var qos = republish["qos"] is JsonValue q && q.TryGetValue<int>(out var level) ? level : 0;
        if (qos is not (0 or 1))
        {
            return new TrellisError.InvalidRequest($"{where}.republish.qos must be 0 or 1.");
        }

        var retain = republish["retain"] is JsonValue r && r.TryGetValue<bool>(out var flag) && flag;
        return new RepublishAction(template, (byte)qos, retain, publisher);
    }

    private sealed class RepublishAction(RuleTemplate topic, byte qos, bool retain, IRulePublisher publisher) : IRuleAction
    {
        public string Name => "RepublishAction";

        public void Execute(RuleContext context, byte[] output, string ruleName)
        {
            var target = topic.Render(context);
            if (!TopicValidator.IsValidTopicName(target))
            {
                throw new InvalidOperationException($"the republish topic '{target}' (from '{topic.Text}') is not a valid topic name");
            }

            publisher.Publish(target, output, qos, retain, "rule:" + ruleName);
        }
    }
}
