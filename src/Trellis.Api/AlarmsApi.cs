using Trellis.Rules.Alarms;
using Trellis.Rules.Notifications;

namespace Trellis.Api;

/// <summary>
/// Alarms on telemetry and notification targets (SigV4, like every route): <c>/api/alarm-models</c>,
/// <c>/api/alarms</c> with acknowledge and clear, and <c>/api/notifications/targets</c>. AWS keeps these
/// in other services (IoT Events, SNS); Trellis serves them from the same process.
/// </summary>
public static class AlarmsApi
{
    public static IEndpointRouteBuilder MapAlarmsApi(this IEndpointRouteBuilder app)
    {
        app.MapPut("/api/alarm-models/{name}", PutModelAsync).WithName("PutAlarmModel");
        app.MapGet("/api/alarm-models", (AlarmEngine alarms) => AwsResults.Json(new JsonObject
        {
            ["alarmModels"] = new JsonArray([.. alarms.ListModels().Select(m => (JsonNode)Describe(m))]),
        })).WithName("ListAlarmModels");
        app.MapGet("/api/alarm-models/{name}", (string name, AlarmEngine alarms) => Answer(alarms.DescribeModel(name), Describe)).WithName("DescribeAlarmModel");
        app.MapDelete("/api/alarm-models/{name}", (string name, HttpContext context, AlarmEngine alarms) =>
            AwsResults.Done(alarms.DeleteModel(name, Actor(context)))).WithName("DeleteAlarmModel");

        app.MapGet("/api/alarms", (HttpRequest request, AlarmEngine alarms) =>
        {
            var states = request.Query["state"].SelectMany(s => (s ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries)).ToList();
            var bad = states.FirstOrDefault(s => s is not (AlarmEngine.Active or AlarmEngine.Acknowledged or AlarmEngine.Cleared));
            var size = RequestBody.QueryInt(request, "maxResults");
            if (bad is not null || !size.IsSuccess)
            {
                return AwsResults.Error(size.Error ?? new TrellisError.InvalidRequest($"state '{bad}' is not ACTIVE, ACKNOWLEDGED or CLEARED."));
            }

            var (items, next) = alarms.List(states, RequestBody.QueryString(request, "thing"), RequestBody.QueryString(request, "model"),
                RequestBody.QueryString(request, "severity"), RequestBody.QueryString(request, "nextToken"), size.Value);
            return AwsResults.Json(AwsResults.WithNext(new JsonObject { ["alarms"] = new JsonArray([.. items.Select(a => (JsonNode)WithoutHistory(Describe(a)))]) }, next));
        }).WithName("ListAlarms");
        app.MapGet("/api/alarms/{id}", (string id, AlarmEngine alarms) => Answer(alarms.Get(id), Describe)).WithName("DescribeAlarm");
        app.MapPost("/api/alarms/{id}/acknowledge", (string id, HttpContext context, AlarmEngine alarms) =>
            StepAsync(context, comment => alarms.Acknowledge(id, Actor(context), comment))).WithName("AcknowledgeAlarm");
        app.MapPost("/api/alarms/{id}/clear", (string id, HttpContext context, AlarmEngine alarms) =>
            StepAsync(context, comment => alarms.Clear(id, Actor(context), comment))).WithName("ClearAlarm");

        app.MapPut("/api/notifications/targets/{name}", PutTargetAsync).WithName("PutNotificationTarget");
        app.MapGet("/api/notifications/targets", (Notifier notifier) => AwsResults.Json(new JsonObject
        {
            ["targets"] = new JsonArray([.. notifier.List().Select(t => (JsonNode)Notifier.ToJson(t))]),
        })).WithName("ListNotificationTargets");
        app.MapGet("/api/notifications/targets/{name}", (string name, Notifier notifier) => Answer(notifier.Describe(name), Notifier.ToJson)).WithName("DescribeNotificationTarget");
        app.MapDelete("/api/notifications/targets/{name}", (string name, Notifier notifier) => AwsResults.Done(notifier.Delete(name))).WithName("DeleteNotificationTarget");
        app.MapPost("/api/notifications/targets/{name}/test", (string name, Notifier notifier) => AwsResults.Done(notifier.Test(name))).WithName("TestNotificationTarget");
        return app;
    }

    private static async Task<IResult> PutModelAsync(string name, HttpRequest request, AlarmEngine alarms)
    {
        var body = await RequestBody.ReadAsync<AlarmModelBody>(request);
        return body.Value is { } m
            ? Answer(alarms.PutModel(new AlarmModel(name, m.Sql, m.Severity ?? "MAJOR", m.Thing, m.Description, m.ClearOnNormal ?? true, 0, 0, 0)), Describe)
            : AwsResults.Error(body.Error!);
    }

    private static async Task<IResult> PutTargetAsync(string name, HttpRequest request, Notifier notifier)
    {
        var body = await RequestBody.ReadAsync<NotificationTargetBody>(request);
        return body.Value is { } t
            ? Answer(notifier.Put(new NotificationTarget(name, t.Type, t.Topic, t.Url, t.To, t.Events ?? [], t.MinSeverity, 0, 0)), Notifier.ToJson)
            : AwsResults.Error(body.Error!);
    }

    private static async Task<IResult> StepAsync(HttpContext context, Func<string?, Result<Alarm>> step)
    {
        var body = await RequestBody.ReadAsync<CommentBody>(context.Request);
        return body.Value is { } c ? Answer(step(c.Comment), Describe) : AwsResults.Error(body.Error!);
    }

    /// <summary>Who acts: the API user (its name when it has one) behind the signing key.</summary>
    private static string Actor(HttpContext context)
    {
        var key = context.Items["trellis.accessKeyId"] as string ?? "unknown";
        var name = (context.RequestServices.GetService(typeof(Trellis.Registry.ApiUsers)) as Trellis.Registry.ApiUsers)?.List().FirstOrDefault(u => u.AccessKeyId == key)?.Name;
        return string.IsNullOrEmpty(name) ? key : $"{name} ({key})";
    }

    private static IResult Answer<T>(Result<T> result, Func<T, JsonObject> describe) =>
        result.IsSuccess ? AwsResults.Json(describe(result.Value!)) : AwsResults.Error(result.Error!);

    private static JsonObject Describe(AlarmModel m) => new()
    {
        ["name"] = m.Name,
        ["sql"] = m.Sql,
        ["severity"] = m.Severity,
        ["thing"] = m.ThingExpression ?? "clientid()",
        ["description"] = m.Description,
        ["clearOnNormal"] = m.ClearOnNormal,
        ["version"] = m.Version,
        ["creationDate"] = AwsResults.Timestamp(m.CreatedMs),
        ["lastModifiedDate"] = AwsResults.Timestamp(m.UpdatedMs),
    };

    /// <summary>A listed alarm: its history is read only for one alarm (GET /api/alarms/{id}), so a list does not pretend it is empty.</summary>
    private static JsonObject WithoutHistory(JsonObject alarm)
    {
        alarm.Remove("history");
        return alarm;
    }

    private static JsonObject Describe(Alarm a) => new()
    {
        ["id"] = a.Id,
        ["model"] = a.Model,
        ["thingName"] = a.Thing,
        ["severity"] = a.Severity,
        ["state"] = a.State,
        ["details"] = a.Details?.DeepClone(),
        ["startedAt"] = AwsResults.Timestamp(a.StartedMs),
        ["updatedAt"] = AwsResults.Timestamp(a.UpdatedMs),
        ["clearedAt"] = a.ClearedMs is { } cleared ? AwsResults.Timestamp(cleared) : null,
        ["history"] = new JsonArray([.. a.History.Select(s => (JsonNode)new JsonObject
        {
            ["state"] = s.State,
            ["at"] = AwsResults.Timestamp(s.AtMs),
            ["by"] = s.Actor,
            ["comment"] = s.Comment,
        })]),
    };
}
