using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace Trellis.Cli;

/// <summary><c>trellis alarms …</c> and <c>trellis notify …</c>: alarms on telemetry, their models, and where notifications go.</summary>
internal static partial class ManageCommands
{
    private static Command Alarms()
    {
        var state = new Option<string[]>("--state") { Description = "ACTIVE, ACKNOWLEDGED or CLEARED (repeatable; default: the open ones)" };
        state.AcceptOnlyFromAmong("ACTIVE", "ACKNOWLEDGED", "CLEARED");
        var thing = new Option<string?>("--thing") { Description = "Only this thing's alarms" };
        var modelFilter = new Option<string?>("--model") { Description = "Only this model's alarms" };
        var list = new Command("list", "List alarms, newest first (open ones unless --state says otherwise).") { state, thing, modelFilter };
        list.SetAction((r, ct) => RunAsync(r,
            api => api.SendAsync(HttpMethod.Get, "/api/alarms", Query([.. (r.GetValue(state) ?? []).Select(s => ("state", (string?)s)), ("thing", r.GetValue(thing)), ("model", r.GetValue(modelFilter))]), null, ct),
            body => Table(body["alarms"], "id", "model", "thingName", "severity", "state", "startedAt")));

        var id = new Argument<string>("id") { Description = "Alarm id (from trellis alarms list)" };
        var show = new Command("show", "Show an alarm: its latest values and each step (who, when, why).") { id };
        show.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, $"/api/alarms/{ApiClient.Segment(r.GetValue(id)!)}", null, null, ct), body =>
        {
            Fields(new JsonObject(body.AsObject().Where(p => p.Key is not ("history" or "details")).Select(p => KeyValuePair.Create(p.Key, p.Value?.DeepClone()))));
            AnsiConsole.MarkupLine("[bold]details[/] " + Markup.Escape(body["details"]?.ToJsonString() ?? "-"));
            Table(body["history"], "state", "at", "by", "comment");
        }));

        var comment = new Option<string?>("--comment") { Description = "Why (kept in the alarm's history)" };
        var ack = new Command("ack", "Acknowledge an ACTIVE alarm: someone is on it.") { id, comment };
        ack.SetAction((r, ct) => StepAsync(r, "acknowledge", id, comment, ct));
        var clear = new Command("clear", "Clear an alarm by hand (it also clears itself when its condition stops).") { id, comment };
        clear.SetAction((r, ct) => StepAsync(r, "clear", id, comment, ct));

        var name = new Argument<string>("name") { Description = "Alarm model name" };
        var sql = new Option<string>("--sql") { Description = "SELECT … FROM 'topic/filter' WHERE condition (the rules SQL)", Required = true };
        var severity = new Option<string>("--severity") { Description = "CRITICAL, MAJOR, MINOR, WARNING or INDETERMINATE", DefaultValueFactory = _ => "MAJOR" };
        var thingExpression = new Option<string?>("--thing-expr") { Description = "SQL expression naming the thing a message is about (default clientid()), e.g. topic(2)" };
        var noClear = new Option<bool>("--no-auto-clear") { Description = "Leave alarms on when the condition stops (clear them by hand)" };
        var description = new Option<string?>("--description") { Description = "What the model watches" };
        var put = new Command("model-put", "Create or replace an alarm model.") { name, sql, severity, thingExpression, noClear, description };
        put.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Put, $"/api/alarm-models/{ApiClient.Segment(r.GetValue(name)!)}", null, WithoutNulls(new JsonObject
        {
            ["sql"] = r.GetValue(sql),
            ["severity"] = r.GetValue(severity),
            ["thing"] = r.GetValue(thingExpression),
            ["description"] = r.GetValue(description),
            ["clearOnNormal"] = !r.GetValue(noClear),
        }), ct), Fields));
        var models = new Command("models", "List alarm models.");
        models.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/api/alarm-models", null, null, ct), body => Table(body["alarmModels"], "name", "severity", "sql", "thing")));
        var deleteModel = new Command("model-delete", "Delete an alarm model (its open alarms are cleared).") { name };
        deleteModel.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Delete, $"/api/alarm-models/{ApiClient.Segment(r.GetValue(name)!)}", null, null, ct), _ => AnsiConsole.MarkupLine("[green]deleted[/]")));
        return new Command("alarms", "Alarms on telemetry: list, show, acknowledge and clear them; manage the models that raise them.") { list, show, ack, clear, put, models, deleteModel };
    }

    private static Task<int> StepAsync(ParseResult r, string verb, Argument<string> id, Option<string?> comment, CancellationToken ct) =>
        RunAsync(r, api => api.SendAsync(HttpMethod.Post, $"/api/alarms/{ApiClient.Segment(r.GetValue(id)!)}/{verb}", null, WithoutNulls(new JsonObject { ["comment"] = r.GetValue(comment) }), ct),
            body => AnsiConsole.MarkupLine($"[green]{Markup.Escape(body["state"]?.GetValue<string>() ?? verb)}[/] {Markup.Escape(body["id"]?.GetValue<string>() ?? string.Empty)}"));

    private static Command Notify()
    {
        var name = new Argument<string>("name") { Description = "Target name" };
        var type = new Option<string>("--type") { Description = "mqtt, webhook or email", Required = true };
        type.AcceptOnlyFromAmong("mqtt", "webhook", "email");
        var topic = new Option<string?>("--topic") { Description = "MQTT topic (type mqtt)" };
        var url = new Option<string?>("--url") { Description = "URL to POST to (type webhook)" };
        var to = new Option<string[]>("--to") { Description = "Email address (type email; repeatable)" };
        var events = new Option<string[]>("--events") { Description = "violations, alarms, presence (repeatable)", Required = true };
        events.AcceptOnlyFromAmong("violations", "alarms", "presence");
        var minSeverity = new Option<string?>("--min-severity") { Description = "Alarms at least this severe only (CRITICAL … INDETERMINATE)" };
        var put = new Command("put", "Create or replace a notification target (admin keys only).") { name, type, topic, url, to, events, minSeverity };
        put.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Put, $"/api/notifications/targets/{ApiClient.Segment(r.GetValue(name)!)}", null, WithoutNulls(new JsonObject
        {
            ["type"] = r.GetValue(type),
            ["topic"] = r.GetValue(topic),
            ["url"] = r.GetValue(url),
            ["to"] = r.GetValue(to) is { Length: > 0 } addresses ? new JsonArray([.. addresses.Select(a => (JsonNode)a)]) : null,
            ["events"] = new JsonArray([.. (r.GetValue(events) ?? []).Select(e => (JsonNode)e)]),
            ["minSeverity"] = r.GetValue(minSeverity),
        }), ct), Fields));
        var list = new Command("list", "List notification targets.");
        list.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/api/notifications/targets", null, null, ct), body => Table(body["targets"], "name", "type", "events", "topic", "url", "to")));
        var test = new Command("test", "Send a test notification to a target now.") { name };
        test.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Post, $"/api/notifications/targets/{ApiClient.Segment(r.GetValue(name)!)}/test", null, null, ct), _ => AnsiConsole.MarkupLine("[green]sent[/] (webhooks and email go through the outbox: they arrive within seconds, retried if the receiver fails)")));
        var delete = new Command("delete", "Delete a notification target.") { name };
        delete.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Delete, $"/api/notifications/targets/{ApiClient.Segment(r.GetValue(name)!)}", null, null, ct), _ => AnsiConsole.MarkupLine("[green]deleted[/]")));
        return new Command("notify", "Where violations, alarms and presence changes are sent: MQTT topics, webhooks, email.") { put, list, test, delete };
    }
}
