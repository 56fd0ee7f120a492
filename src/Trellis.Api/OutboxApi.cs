using Microsoft.Extensions.Logging;
using Trellis.Rules;

namespace Trellis.Api;

/// <summary>
/// <c>/api/outbox</c>: what waits for external rule targets (HTTP, NATS, Kafka, notification
/// webhooks and mail), per target with depth, age, rules and last error; retry a target now; discard
/// what waits for a target or a rule. Listing needs any key, retry and purge an operator's.
/// </summary>
public static partial class OutboxApi
{
    public static IEndpointRouteBuilder MapOutboxApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/outbox", (Outbox outbox, TimeProvider time) => AwsResults.Json(new JsonObject
        {
            ["targets"] = new JsonArray([.. outbox.States().Select(t => (JsonNode)Describe(t, time.GetUtcNow().ToUnixTimeMilliseconds()))]),
        })).WithName("ListOutboxTargets");
        app.MapPost("/api/outbox/retry", RetryAsync).WithName("RetryOutboxTarget");
        app.MapPost("/api/outbox/purge", PurgeAsync).WithName("PurgeOutbox");
        return app;
    }

    private static async Task<IResult> RetryAsync(HttpRequest request, Outbox outbox)
    {
        var body = await RequestBody.ReadAsync<OutboxBody>(request);
        if (body.Value is not { } b)
        {
            return AwsResults.Error(body.Error!);
        }

        List<string> targets;
        if (b.Target is { } given)
        {
            if (outbox.Resolve(given) is not { } target)
            {
                return AwsResults.Error(new TrellisError.NotFound($"No outbox target '{given}' (GET /api/outbox, or trellis outbox, lists them)."));
            }

            targets = [target];
        }
        else
        {
            targets = [.. outbox.States().Where(t => t.Depth > 0).Select(t => t.Target)];
        }

        foreach (var target in targets)
        {
            outbox.RetryNow(target);
        }

        return AwsResults.Json(new JsonObject { ["targets"] = new JsonArray([.. targets.Select(t => (JsonNode)Outbox.Display(t))]) });
    }

    private static async Task<IResult> PurgeAsync(HttpRequest request, Outbox outbox, ILoggerFactory logs)
    {
        var body = await RequestBody.ReadAsync<OutboxBody>(request);
        if (body.Value is not { } b)
        {
            return AwsResults.Error(body.Error!);
        }

        if (b.Target is null && b.Rule is null)
        {
            return AwsResults.Error(new TrellisError.InvalidRequest("Say what to discard: target, rule, or both (a target's messages from one rule)."));
        }

        string? target = null;
        if (b.Target is { } given && (target = outbox.Resolve(given)) is null)
        {
            return AwsResults.Error(new TrellisError.NotFound($"No outbox target '{given}' (GET /api/outbox, or trellis outbox, lists them)."));
        }

        var purged = outbox.Purge(target, b.Rule);
        LogPurged(logs.CreateLogger("Trellis.Rules.Outbox"), request.HttpContext.Items["trellis.accessKeyId"] as string ?? "?", purged,
            target is null ? "any target" : Outbox.Display(target), b.Rule ?? "any rule");
        return AwsResults.Json(new JsonObject { ["purged"] = purged });
    }

    private static JsonObject Describe(OutboxTargetState t, long nowMs) => new()
    {
        ["target"] = t.Display,
        ["depth"] = t.Depth,
        ["oldestAgeSeconds"] = t.OldestMs is { } o ? Math.Max(0, (nowMs - o) / 1000.0) : null,
        ["rules"] = new JsonArray([.. t.Rules.Select(r => (JsonNode)r)]),
        ["lastError"] = t.LastError,
        ["lastFailure"] = t.LastFailureMs is { } f ? AwsResults.Timestamp(f) : null,
        ["nextAttempt"] = t.NextAttemptMs is { } n ? AwsResults.Timestamp(n) : null,
        ["deliveredSinceStart"] = t.Delivered,
    };

    [LoggerMessage(EventId = 6110, Level = LogLevel.Warning, Message = "Outbox purged by {AccessKeyId}: {Count} message(s) for {Target} from {Rule} discarded, undelivered.")]
    private static partial void LogPurged(ILogger logger, string accessKeyId, long count, string target, string rule);
}
