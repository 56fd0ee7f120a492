using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Trellis.Core.Topics;
using Trellis.Gateway.Forwarding;
using Trellis.Rules;
using Trellis.Rules.Sql;

namespace Trellis.Gateway.Rules;

/// <summary>One local rule: AWS IoT SQL run on the gateway, per message or folded into a tumbling window.</summary>
public sealed record EdgeRule(string Name, CompiledSql Sql, RuleTemplate? Topic, int WindowSeconds, IReadOnlyList<string> Functions, bool KeepRaw);

/// <summary>A rules file that cannot be used, with the file and the rule it is about.</summary>
public sealed class EdgeRulesException : Exception
{
    public EdgeRulesException()
    {
    }

    public EdgeRulesException(string message)
        : base(message)
    {
    }

    public EdgeRulesException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

/// <summary>
/// Local processing on the gateway (docs/gateway.md, "Local rules"): each leaf message whose topic
/// matches a rule's FROM is run through the rule's SQL (the server's dialect: filter with WHERE,
/// reshape with SELECT); the result goes upstream on the rule's topic, either at once or folded into
/// a tumbling window whose aggregates (avg, min, max, sum, count of each numeric field) go upstream
/// once per window. A matched message is not sent upstream raw unless a rule says <c>keepRaw</c>;
/// a message no rule matches goes upstream as it came. Window states live in the disk queue's
/// database and change in the same commit as the messages, so a leaf's PUBACK still means durable.
/// </summary>
public sealed partial class EdgeRules(IReadOnlyList<EdgeRule> rules, ILogger logger)
{
    private static readonly string[] KnownFunctions = ["avg", "min", "max", "sum", "count"];
    private readonly Dictionary<string, EdgeRule> _byName = rules.ToDictionary(r => r.Name, StringComparer.Ordinal);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> _failing = new(StringComparer.Ordinal);

    public IReadOnlyList<EdgeRule> Rules => rules;

    /// <summary>Reads a rules file: <c>{"rules": [{"name", "sql", "topic"?, "windowSeconds"?, "functions"?, "keepRaw"?}]}</c>.</summary>
    public static EdgeRules Load(string path, ILogger logger)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path), documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new EdgeRulesException($"{path}, line {e.LineNumber + 1}: not JSON: {e.Message}", e);
        }

        var list = new List<EdgeRule>();
        foreach (var node in root?["rules"] as JsonArray ?? throw new EdgeRulesException($"{path}: no \"rules\" array"))
        {
            var name = node?["name"]?.GetValue<string>() ?? throw new EdgeRulesException($"{path}: rule {list.Count + 1} has no \"name\"");
            var where = $"{path}, rule {name}";
            if (list.Any(r => r.Name == name))
            {
                throw new EdgeRulesException($"{where}: the name is used twice");
            }

            CompiledSql sql;
            RuleTemplate? topic;
            try
            {
                sql = CompiledSql.Compile(node!["sql"]?.GetValue<string>() ?? throw new EdgeRulesException($"{where}: no \"sql\""));
                topic = node["topic"]?.GetValue<string>() is { } template ? RuleTemplate.Compile(template) : null;
            }
            catch (SqlSyntaxException e)
            {
                throw new EdgeRulesException($"{where}: {e.Message}", e);
            }

            var window = node["windowSeconds"]?.GetValue<int>() ?? 0;
            if (window is < 0 or > 86_400)
            {
                throw new EdgeRulesException($"{where}: windowSeconds {window} is not between 1 and 86400 (or absent, for a rule per message)");
            }

            var functions = node["functions"]?.AsArray().Select(f => f!.GetValue<string>()).ToList() ?? ["avg"];
            if (functions.FirstOrDefault(f => !KnownFunctions.Contains(f)) is { } unknown)
            {
                throw new EdgeRulesException($"{where}: function \"{unknown}\" is not one of {string.Join(", ", KnownFunctions)}");
            }

            list.Add(new EdgeRule(name, sql, topic, window, functions, node["keepRaw"]?.GetValue<bool>() ?? false));
        }

        return new EdgeRules(list, logger);
    }

    /// <summary>Takes one leaf message: what the rules make of it (and the raw message, when no rule took it) is durable when this completes.</summary>
    public async Task TakeAsync(ForwardStore store, string topic, byte[] payload, string leaf, long receivedMs, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(store);
        var tasks = new List<Task>(2);
        var matched = false;
        var keepRaw = false;
        RuleContext? context = null;
        foreach (var rule in rules)
        {
            if (!TopicMatcher.Matches(rule.Sql.TopicFilter, topic))
            {
                continue;
            }

            matched = true;
            keepRaw |= rule.KeepRaw;
            context ??= new RuleContext { Topic = topic, Payload = RuleContext.ParsePayload(payload), RawPayload = payload, ClientId = leaf, Principal = leaf, TimestampMs = receivedMs };
            object? output;
            string target;
            try
            {
                output = rule.Sql.Evaluate(context);
                target = rule.Topic?.Render(context) ?? topic;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                if (_failing.TryAdd(rule.Name, true))
                {
                    LogRuleFailed(logger, rule.Name, topic, e.Message);
                }

                continue;
            }

            if (output is null)
            {
                continue; // WHERE did not hold: filtered out at the edge
            }

            if (rule.WindowSeconds == 0)
            {
                var bytes = output as byte[] ?? Encoding.UTF8.GetBytes(((JsonNode)output).ToJsonString());
                tasks.Add(store.AppendAsync(target, bytes, leaf, receivedMs, ct));
            }
            else if (output is JsonObject fields)
            {
                var length = rule.WindowSeconds * 1000L;
                var start = receivedMs / length * length;
                var values = fields.Where(f => f.Value is JsonValue v && v.GetValueKind() == JsonValueKind.Number)
                    .Select(f => (f.Key, double.Parse(f.Value!.ToJsonString(), CultureInfo.InvariantCulture))).ToList();
                tasks.Add(store.UpdateWindowAsync(Key(rule.Name, target, start, leaf), old => Fold(old, values)));
            }
        }

        if (!matched || keepRaw)
        {
            tasks.Add(store.AppendAsync(topic, payload, leaf, receivedMs, ct));
        }

        await Task.WhenAll(tasks);
    }

    /// <summary>Closes each window at its end (checked every second) and queues its aggregates.</summary>
    public async Task RunAsync(ForwardStore store, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(store);
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        try
        {
            do
            {
                var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                foreach (var key in store.WindowKeys())
                {
                    var (name, target, start, leaf) = Parse(key);
                    var rule = _byName.GetValueOrDefault(name);
                    var end = start + (rule?.WindowSeconds ?? 60) * 1000L;
                    if (end <= now)
                    {
                        await store.CloseWindowAsync(key, state => (target, Encoding.UTF8.GetBytes(Aggregate(state, start, end, rule?.Functions ?? ["avg"])), leaf));
                    }
                }
            }
            while (await timer.WaitForNextTickAsync(ct));
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    private static string Key(string rule, string topic, long start, string leaf) =>
        string.Join('\u001f', rule, topic, start.ToString(CultureInfo.InvariantCulture), leaf);

    private static (string Rule, string Topic, long Start, string Leaf) Parse(string key)
    {
        var parts = key.Split('\u001f');
        return (parts[0], parts[1], long.Parse(parts[2], CultureInfo.InvariantCulture), parts[3]);
    }

    /// <summary>Window state: {"n": messages, "f": {field: [count, sum, min, max]}}.</summary>
    private static string Fold(string? old, List<(string Name, double Value)> values)
    {
        var state = old is null ? new JsonObject { ["n"] = 0L, ["f"] = new JsonObject() } : JsonNode.Parse(old)!.AsObject();
        state["n"] = state["n"]!.GetValue<long>() + 1;
        var fields = state["f"]!.AsObject();
        foreach (var (name, value) in values)
        {
            if (fields[name] is JsonArray a)
            {
                fields[name] = new JsonArray(a[0]!.GetValue<long>() + 1, a[1]!.GetValue<double>() + value, Math.Min(a[2]!.GetValue<double>(), value), Math.Max(a[3]!.GetValue<double>(), value));
            }
            else
            {
                fields[name] = new JsonArray(1L, value, value, value);
            }
        }

        return state.ToJsonString();
    }

    private static string Aggregate(string state, long start, long end, IReadOnlyList<string> functions)
    {
        var parsed = JsonNode.Parse(state)!.AsObject();
        var output = new JsonObject { ["windowStart"] = start, ["windowEnd"] = end, ["count"] = parsed["n"]!.GetValue<long>() };
        foreach (var (name, node) in parsed["f"]!.AsObject())
        {
            var a = node!.AsArray();
            var (count, sum, min, max) = (a[0]!.GetValue<long>(), a[1]!.GetValue<double>(), a[2]!.GetValue<double>(), a[3]!.GetValue<double>());
            foreach (var function in functions)
            {
                output[$"{name}_{function}"] = function switch
                {
                    "avg" => sum / count,
                    "min" => min,
                    "max" => max,
                    "sum" => sum,
                    _ => count,
                };
            }
        }

        return output.ToJsonString();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Local rule {Rule} failed on a message on {Topic}: {Reason}; the message is skipped by this rule (logged once per rule)")]
    private static partial void LogRuleFailed(ILogger logger, string rule, string topic, string reason);
}
