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

/// <summary>Where the store action writes: Trellis's time-series store.</summary>
public interface ITelemetrySink
{
    /// <summary>Queues one point; waits while the store's queue is full.</summary>
    ValueTask WriteAsync(long timestampMs, string thing, string measure, double value, CancellationToken cancellationToken);
}

/// <summary>The targets actions can reach; external ones (http, nats, kafka) through the durable outbox; http only to confirmed destinations.</summary>
public sealed record RuleTargets(IRulePublisher Publisher, ITelemetrySink? Telemetry, Outbox? Outbox = null, TopicRuleDestinations? Destinations = null);

/// <summary>One compiled action of a rule.</summary>
public interface IRuleAction
{
    /// <summary>AWS's name of the action in error reports, e.g. RepublishAction.</summary>
    string Name { get; }

    /// <summary>Runs the action for one output; an exception is the failure reported to the error action.</summary>
    ValueTask ExecuteAsync(RuleContext context, byte[] output, JsonNode? document, string ruleName, CancellationToken cancellationToken);
}

/// <summary>Parses and checks actions in AWS's shape (<c>{"republish": {"topic": …, "qos": …}}</c>).</summary>
public static class RuleActions
{
    public static readonly IReadOnlyList<string> Supported = ["republish", "timestream (Trellis's own time-series store)", "http", "nats", "kafka"];

    public static Result<IRuleAction> Compile(JsonNode? action, RuleTargets targets, string where)
    {
        if (action is not JsonObject obj || obj.Count != 1)
        {
            return new TrellisError.InvalidRequest($"{where} must be an object with exactly one action, such as {{\"republish\": {{\"topic\": \"…\", \"roleArn\": \"…\"}}}}.");
        }

        var (kind, settings) = obj.First();
        if (kind == "timestream")
        {
            return CompileStore(settings, targets, where);
        }

        if (kind is "http" or "nats" or "kafka")
        {
            return CompileExternal(kind, settings, targets, where);
        }

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
        return new RepublishAction(template, (byte)qos, retain, targets.Publisher);
    }

    /// <summary>
    /// External targets through the outbox. http: <c>{"url": "https://…/${topic(2)}", "headers": [{"key", "value"}]}</c>
    /// (AWS's shape); nats: <c>{"url": "nats://host:4222", "subject": "telemetry.${topic(2)}", "jetStream": false}</c>.
    /// </summary>
    private static Result<IRuleAction> CompileExternal(string kind, JsonNode? settings, RuleTargets targets, string where)
    {
        if (targets.Outbox is null)
        {
            return new TrellisError.InvalidRequest($"{where}.{kind}: external actions are not available on this server.");
        }

        if (settings is not JsonObject config)
        {
            return new TrellisError.InvalidRequest($"{where}.{kind} must be an object.");
        }

        string? Text(string name) => config[name] is JsonValue v && v.TryGetValue<string>(out var text) ? text : null;
        try
        {
            if (kind == "http")
            {
                if (Text("url") is not { } url || !url.StartsWith("http", StringComparison.OrdinalIgnoreCase))
                {
                    return new TrellisError.InvalidRequest($"{where}.http.url is required: an http(s) URL (substitution templates allowed).");
                }

                var template = RuleTemplate.Compile(url);
                if (template.IsConstant && !Uri.TryCreate(url, UriKind.Absolute, out _))
                {
                    return new TrellisError.InvalidRequest($"{where}.http.url '{url}' is not a valid URL.");
                }

                var headers = config["headers"] is JsonArray list && list.All(h => h?["key"] is JsonValue && h["value"] is JsonValue) ? list.ToJsonString() : null;
                if (config["headers"] is not null && headers is null)
                {
                    return new TrellisError.InvalidRequest($"{where}.http.headers must be a list of {{\"key\": …, \"value\": …}}.");
                }

                // As on AWS: the confirmation URL (default: the URL) is a prefix of the URL, and a URL
                // with substitution templates names it explicitly.
                var confirmationUrl = Text("confirmationUrl");
                if (confirmationUrl is null && !template.IsConstant)
                {
                    return new TrellisError.InvalidRequest($"{where}.http.confirmationUrl is required when the url has substitution templates: give the fixed prefix of the url that a topic rule destination confirms.");
                }

                if (confirmationUrl is not null && !confirmationUrl.Contains("${", StringComparison.Ordinal) && !url.StartsWith(confirmationUrl, StringComparison.Ordinal))
                {
                    return new TrellisError.InvalidRequest($"{where}.http.confirmationUrl '{confirmationUrl}' must be a prefix of the url '{url}'.");
                }

                // One ordered queue per destination host.
                var key = template.IsConstant ? new Uri(url).GetLeftPart(UriPartial.Authority) : url[..Math.Max(0, url.IndexOf("${", StringComparison.Ordinal))];
                return new OutboxAction("HttpAction", "http|" + key, template, headers, targets.Outbox, targets.Destinations is { } destinations ? destinations.Refusal : null);
            }

            if (kind == "kafka")
            {
                return CompileKafka(config, targets.Outbox, where);
            }

            if (Text("url") is not { } server || !server.StartsWith("nats://", StringComparison.OrdinalIgnoreCase) || !Uri.TryCreate(server, UriKind.Absolute, out _))
            {
                return new TrellisError.InvalidRequest($"{where}.nats.url is required: the server, such as nats://127.0.0.1:4222.");
            }

            if (Text("subject") is not { Length: > 0 } subject)
            {
                return new TrellisError.InvalidRequest($"{where}.nats.subject is required (substitution templates allowed).");
            }

            var jetStream = config["jetStream"] is JsonValue js && js.TryGetValue<bool>(out var flag) && flag;
            return new OutboxAction("NatsAction", $"nats|{server}|{(jetStream ? "js" : "core")}", RuleTemplate.Compile(subject), null, targets.Outbox);
        }
        catch (SqlSyntaxException e)
        {
            return new TrellisError.InvalidRequest($"{where}.{kind}: {e.Message}");
        }
    }

    /// <summary>
    /// AWS's kafka action: <c>{"topic", "key", "partition", "clientProperties": {"bootstrap.servers": …}, "headers": [{"key", "value"}], "destinationArn"}</c>.
    /// One ordered outbox queue per bootstrap address and client properties.
    /// </summary>
    private static Result<IRuleAction> CompileKafka(JsonObject config, Outbox outbox, string where)
    {
        if (config["topic"]?.GetValue<string>() is not { Length: > 0 } topic)
        {
            return new TrellisError.InvalidRequest($"{where}.kafka.topic is required (substitution templates allowed).");
        }

        if (config["clientProperties"] is not JsonObject properties || properties["bootstrap.servers"]?.GetValue<string>() is not { Length: > 0 })
        {
            return new TrellisError.InvalidRequest($"{where}.kafka.clientProperties must hold bootstrap.servers (and any other producer settings).");
        }

        var extras = new JsonObject();
        if (config["key"]?.GetValue<string>() is { } key)
        {
            extras["key"] = key;
        }

        if (config["partition"]?.GetValue<string>() is { } partition)
        {
            if (!int.TryParse(partition, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var number))
            {
                return new TrellisError.InvalidRequest($"{where}.kafka.partition must be a partition number.");
            }

            extras["partition"] = number;
        }

        if (config["headers"] is JsonArray headers)
        {
            extras["headers"] = headers.DeepClone();
        }

        var target = "kafka|" + properties.ToJsonString();
        return new OutboxAction("KafkaAction", target, RuleTemplate.Compile(topic), extras.Count == 0 ? null : extras.ToJsonString(), outbox);
    }

    /// <summary>
    /// AWS's timestream action, writing to Trellis's store: each numeric (or boolean) top-level
    /// field of the rule's output that is not a dimension becomes a point of that measure. The
    /// dimension named <c>thing</c> names the thing (default: the client id).
    /// </summary>
    private static Result<IRuleAction> CompileStore(JsonNode? settings, RuleTargets targets, string where)
    {
        if (targets.Telemetry is null)
        {
            return new TrellisError.InvalidRequest($"{where}.timestream: the time-series store is not available on this server.");
        }

        if (settings is not JsonObject store)
        {
            return new TrellisError.InvalidRequest($"{where}.timestream must be an object with dimensions (and optionally timestamp).");
        }

        try
        {
            var dimensions = new List<(string Name, RuleTemplate Value)>();
            if (store["dimensions"] is JsonArray list)
            {
                foreach (var item in list)
                {
                    if (item?["name"] is not JsonValue n || !n.TryGetValue<string>(out var name) || item["value"] is not JsonValue v || !v.TryGetValue<string>(out var value))
                    {
                        return new TrellisError.InvalidRequest($"{where}.timestream.dimensions: each dimension needs a name and a value.");
                    }

                    dimensions.Add((name, RuleTemplate.Compile(value)));
                }
            }

            RuleTemplate? timestamp = null;
            long scale = 1;
            if (store["timestamp"] is JsonObject time)
            {
                timestamp = RuleTemplate.Compile(time["value"]?.GetValue<string>() ?? "${timestamp()}");
                var unit = time["unit"]?.GetValue<string>() ?? "MILLISECONDS";
                scale = unit switch
                {
                    "MILLISECONDS" => 1,
                    "SECONDS" => 1000,
                    "MICROSECONDS" => -1000,
                    "NANOSECONDS" => -1_000_000,
                    _ => 0,
                };
                if (scale == 0)
                {
                    return new TrellisError.InvalidRequest($"{where}.timestream.timestamp.unit must be SECONDS, MILLISECONDS, MICROSECONDS or NANOSECONDS.");
                }
            }

            return new StoreAction(dimensions, timestamp, scale, targets.Telemetry);
        }
        catch (SqlSyntaxException e)
        {
            return new TrellisError.InvalidRequest($"{where}.timestream: {e.Message}");
        }
    }

    private sealed class RepublishAction(RuleTemplate topic, byte qos, bool retain, IRulePublisher publisher) : IRuleAction
    {
        public string Name => "RepublishAction";

        public ValueTask ExecuteAsync(RuleContext context, byte[] output, JsonNode? document, string ruleName, CancellationToken cancellationToken)
        {
            var target = topic.Render(context);
            if (!TopicValidator.IsValidTopicName(target))
            {
                throw new InvalidOperationException($"the republish topic '{target}' (from '{topic.Text}') is not a valid topic name");
            }

            publisher.Publish(target, output, qos, retain, "rule:" + ruleName);
            return ValueTask.CompletedTask;
        }
    }

    private sealed class StoreAction(List<(string Name, RuleTemplate Value)> dimensions, RuleTemplate? timestamp, long scale, ITelemetrySink sink) : IRuleAction
    {
        public string Name => "TimestreamAction";

        public async ValueTask ExecuteAsync(RuleContext context, byte[] output, JsonNode? document, string ruleName, CancellationToken cancellationToken)
        {
            if (document is not JsonObject fields)
            {
                throw new InvalidOperationException("the store action needs a JSON object as the rule's output (its numeric fields become measures)");
            }

            var thing = dimensions.FirstOrDefault(d => d.Name == "thing").Value?.Render(context) is { Length: > 0 } named ? named : context.ClientId ?? "unknown";
            var time = context.TimestampMs;
            if (timestamp is not null)
            {
                var text = timestamp.Render(context);
                if (!long.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var value))
                {
                    throw new InvalidOperationException($"the timestamp '{text}' is not a whole number");
                }

                time = scale > 0 ? value * scale : value / -scale;
            }

            var measures = 0;
            foreach (var (name, node) in fields)
            {
                if (dimensions.Any(d => d.Name == name) || node is not JsonValue v)
                {
                    continue;
                }

                double? number = v.GetValueKind() switch
                {
                    System.Text.Json.JsonValueKind.Number => double.Parse(v.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture),
                    System.Text.Json.JsonValueKind.True => 1,
                    System.Text.Json.JsonValueKind.False => 0,
                    _ => null,
                };
                if (number is { } measure)
                {
                    await sink.WriteAsync(time, thing, name, measure, cancellationToken);
                    measures++;
                }
            }

            if (measures == 0)
            {
                throw new InvalidOperationException("the rule's output has no numeric field to store");
            }
        }
    }

    /// <summary>Stores the message in the outbox (durably) for its target; the dispatcher delivers it.</summary>
    private sealed class OutboxAction(string name, string target, RuleTemplate address, string? headers, Outbox outbox, Func<string, string?>? refusal = null) : IRuleAction
    {
        public string Name => name;

        public ValueTask ExecuteAsync(RuleContext context, byte[] output, JsonNode? document, string ruleName, CancellationToken cancellationToken)
        {
            var rendered = address.Render(context);
            if (refusal?.Invoke(rendered) is { } refused)
            {
                throw new InvalidOperationException(refused);
            }

            if (outbox.Enqueue(target, ruleName, rendered, headers, output, context.Topic, context.ClientId) is { } error)
            {
                throw new InvalidOperationException(error.Message);
            }

            return ValueTask.CompletedTask;
        }
    }
}
