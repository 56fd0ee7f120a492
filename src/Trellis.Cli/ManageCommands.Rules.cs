using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace Trellis.Cli;

/// <summary><c>trellis rules …</c> (topic rules) and <c>trellis destinations …</c> (HTTP topic rule destinations).</summary>
internal static partial class ManageCommands
{
    private static Command TopicRules()
    {
        var name = new Argument<string>("name") { Description = "Rule name (letters, digits, _)" };
        var sql = new Option<string?>("--sql") { Description = "The rule's SQL, e.g. \"SELECT temp FROM 'dt/+/telemetry' WHERE temp > 30\"" };
        var action = new Option<string[]>("--action") { Description = "An action as JSON, e.g. '{\"republish\": {\"topic\": \"alerts/${topic(2)}\"}}' (repeatable)", AllowMultipleArgumentsPerToken = false };
        var errorAction = new Option<string?>("--error-action") { Description = "The error action as JSON" };
        var file = new Option<FileInfo?>("--file") { Description = "The whole TopicRulePayload as a JSON file (instead of --sql and --action)" };
        var description = new Option<string?>("--description") { Description = "What the rule is for" };

        var list = new Command("list", "List topic rules.");
        list.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/rules", null, null, ct),
            body => Table(body["rules"], "ruleName", "topicPattern", "ruleDisabled", "createdAt")));

        var describe = new Command("describe", "Show a rule: its SQL, actions and error action.") { name };
        describe.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/rules/" + ApiClient.Segment(r.GetValue(name)!), null, null, ct),
            body => Fields(body["rule"]!)));

        var commands = new List<Command> { list, describe };
        foreach (var (verb, method, help) in new[] { ("create", HttpMethod.Post, "Create a rule (any action Trellis has, nats included)."), ("replace", HttpMethod.Patch, "Replace a rule's SQL, actions and error action.") })
        {
            var command = new Command(verb, help) { name, sql, action, errorAction, file, description };
            command.SetAction(async (r, ct) =>
            {
                JsonNode? payload;
                try
                {
                    payload = await RulePayloadAsync(r.GetValue(sql), r.GetValue(action) ?? [], r.GetValue(errorAction), r.GetValue(file), r.GetValue(description), ct);
                }
                catch (JsonException e)
                {
                    return Usage($"not valid JSON: {e.Message}");
                }

                if (payload is null)
                {
                    return Usage("give --sql with at least one --action, or --file with a TopicRulePayload");
                }

                return await RunAsync(r, api => api.SendAsync(method, "/rules/" + ApiClient.Segment(r.GetValue(name)!), null, payload, ct),
                    _ => AnsiConsole.MarkupLine($"[green]{verb}d[/] rule {Markup.Escape(r.GetValue(name)!)}"));
            });
            commands.Add(command);
        }

        foreach (var (verb, path, help) in new[] { ("enable", "/enable", "Start evaluating a rule."), ("disable", "/disable", "Stop evaluating a rule.") })
        {
            var command = new Command(verb, help) { name };
            command.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Post, "/rules/" + ApiClient.Segment(r.GetValue(name)!) + path, null, null, ct),
                _ => AnsiConsole.MarkupLine($"[green]{verb}d[/]")));
            commands.Add(command);
        }

        var delete = new Command("delete", "Delete a rule.") { name };
        delete.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Delete, "/rules/" + ApiClient.Segment(r.GetValue(name)!), null, null, ct),
            _ => AnsiConsole.MarkupLine("[green]deleted[/]")));
        commands.Add(delete);

        return Group("rules", "Topic rules: SQL over messages, with actions (republish, store, http, nats, kafka).", commands);
    }

    private static async Task<JsonNode?> RulePayloadAsync(string? sql, string[] actions, string? errorAction, FileInfo? file, string? description, CancellationToken cancellationToken)
    {
        if (file is not null)
        {
            return file.Exists ? JsonNode.Parse(await File.ReadAllTextAsync(file.FullName, cancellationToken)) : throw new JsonException($"{file.FullName} does not exist");
        }

        if (sql is null || actions.Length == 0)
        {
            return null;
        }

        var payload = new JsonObject
        {
            ["sql"] = sql,
            ["actions"] = new JsonArray([.. actions.Select(a => JsonNode.Parse(a))]),
            ["awsIotSqlVersion"] = "2016-03-23",
        };
        if (errorAction is not null)
        {
            payload["errorAction"] = JsonNode.Parse(errorAction);
        }

        if (description is not null)
        {
            payload["description"] = description;
        }

        return payload;
    }

    private static Command RuleDestinations()
    {
        var arn = new Argument<string>("arn") { Description = "Destination ARN (arn:aws:iot:…:ruledestination/http/…)" };
        var url = new Argument<string>("confirmation-url") { Description = "URL prefix the destination confirms, e.g. https://hooks.example.com/iot/" };
        var token = new Argument<string>("token") { Description = "The confirmationToken of the confirmation message" };

        var list = new Command("list", "List HTTP topic rule destinations and their status.");
        list.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/destinations", null, null, ct),
            body => Table(new JsonArray([.. body["destinationSummaries"]!.AsArray().Select(d => (JsonNode)new JsonObject
            {
                ["arn"] = d!["arn"]!.GetValue<string>(),
                ["confirmationUrl"] = d["httpUrlSummary"]?["confirmationUrl"]?.GetValue<string>(),
                ["status"] = d["status"]!.GetValue<string>(),
                ["statusReason"] = d["statusReason"]?.GetValue<string>(),
            })]), "arn", "confirmationUrl", "status", "statusReason")));

        var create = new Command("create", "Create a destination; the URL receives a confirmation message to answer.") { url };
        create.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Post, "/destinations", null,
            new JsonObject { ["destinationConfiguration"] = new JsonObject { ["httpUrlConfiguration"] = new JsonObject { ["confirmationUrl"] = r.GetValue(url) } } }, ct),
            body => Fields(body["topicRuleDestination"]!)));

        var confirm = new Command("confirm", "Confirm a destination with the token of its confirmation message.") { token };
        confirm.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/confirmdestination/" + ApiClient.Segment(r.GetValue(token)!), null, null, ct),
            _ => AnsiConsole.MarkupLine("[green]confirmed[/]")));

        var commands = new List<Command> { list, create, confirm };
        foreach (var (verb, status, help) in new[]
        {
            ("enable", "ENABLED", "Enable a disabled destination."),
            ("disable", "DISABLED", "Stop http actions sending to a destination."),
            ("reconfirm", "IN_PROGRESS", "Send a new confirmation message (with a new token)."),
        })
        {
            var command = new Command(verb, help) { arn };
            command.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Patch, "/destinations", null, new JsonObject { ["arn"] = r.GetValue(arn), ["status"] = status }, ct),
                _ => AnsiConsole.MarkupLine($"[green]{status}[/]")));
            commands.Add(command);
        }

        var delete = new Command("delete", "Delete a destination.") { arn };
        delete.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Delete, "/destinations/" + r.GetValue(arn), null, null, ct),
            _ => AnsiConsole.MarkupLine("[green]deleted[/]")));
        commands.Add(delete);

        return Group("destinations", "HTTP topic rule destinations: the URLs http actions may send to, once confirmed.", commands);
    }
}
