using System.Globalization;
using Trellis.Registry;

namespace Trellis.Api;

/// <summary>
/// Records every management call that changes something in the audit log: after the call ran,
/// with the access key that signed it, the operation (AWS's name), its target and how it ended.
/// Reads (GET, and the List… operations sent as POST) and the data plane (shadows, HTTPS publish)
/// are not recorded.
/// </summary>
public sealed class AuditMiddleware(RequestDelegate next, AuditLog log, TimeProvider time)
{
    private static readonly HashSet<string> DataPlane = new(StringComparer.Ordinal) { "UpdateThingShadow", "DeleteThingShadow", "Publish" };

    public Task InvokeAsync(HttpContext context)
    {
        var method = context.Request.Method;
        if (HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method))
        {
            return next(context);
        }

        var operation = context.GetEndpoint()?.Metadata.GetMetadata<IEndpointNameMetadata>()?.EndpointName;
        if (operation is null || operation.StartsWith("List", StringComparison.Ordinal) || DataPlane.Contains(operation))
        {
            return next(context);
        }

        // Recorded as the response starts, before its status reaches the client: a 2xx the client
        // has seen is in the audit log, across a crash too.
        context.Response.OnStarting(() =>
        {
            log.Record(new AuditEvent(
                0,
                time.GetUtcNow().ToUnixTimeMilliseconds(),
                context.Items["trellis.accessKeyId"] as string,
                operation,
                method,
                context.Request.Path.Value ?? "/",
                Target(context),
                context.Response.StatusCode,
                context.Response.Headers["x-amzn-ErrorType"].ToString() is { Length: > 0 } error ? error : null));
            return Task.CompletedTask;
        });
        return next(context);
    }

    /// <summary>
    /// What the call acted on: from the dispatcher, the names, ARNs and ids of the bound request
    /// (including those in the body, such as AddThingToThingGroup's); for the hand-written routes, the
    /// route values (thingName=…, policyName=…) and the principal header, if any.
    /// </summary>
    private static string? Target(HttpContext context)
    {
        if (context.Items[Aws.AwsRequestReader.AuditTargetKey] is string bound)
        {
            return bound;
        }

        var parts = context.Request.RouteValues.Select(v => $"{v.Key}={v.Value}").ToList();
        foreach (var header in new[] { "x-amzn-principal", "x-amzn-iot-principal" })
        {
            if (context.Request.Headers[header].ToString() is { Length: > 0 } principal)
            {
                parts.Add($"principal={principal}");
            }
        }

        return parts.Count == 0 ? null : string.Join(' ', parts);
    }
}

/// <summary><c>GET /api/audit</c>: the audit log, filtered and paged.</summary>
public static class AuditApi
{
    public static IEndpointRouteBuilder MapAuditApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/audit", List).WithName("ListAuditEvents");
        return app;
    }

    private static IResult List(HttpRequest request, AuditLog log)
    {
        var q = request.Query;
        long? Time(string name) => q[name].ToString() is { Length: > 0 } v && DateTimeOffset.TryParse(v, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t) ? t.ToUnixTimeMilliseconds() : null;
        foreach (var name in new[] { "since", "until" })
        {
            if (q[name].ToString() is { Length: > 0 } value && Time(name) is null)
            {
                return AwsResults.Error("InvalidRequestException", 400, $"{name} must be a date and time (ISO 8601, e.g. 2026-11-27T10:00:00Z), not '{value}'.");
            }
        }

        var max = RequestBody.QueryInt(request, "maxResults");
        var failed = q["failed"].ToString() is { Length: > 0 } f ? bool.TryParse(f, out var b) ? b : (bool?)null : null;
        if (!max.IsSuccess || (q["failed"].Count > 0 && failed is null))
        {
            return AwsResults.Error(max.Error ?? new Core.Errors.TrellisError.InvalidRequest("failed must be true or false."));
        }

        var order = q["order"].ToString();
        if (order is not ("" or "oldest" or "newest"))
        {
            return AwsResults.Error("InvalidRequestException", 400, $"order must be oldest (the default) or newest, not '{order}'.");
        }

        var after = long.TryParse(q["nextToken"], NumberStyles.None, CultureInfo.InvariantCulture, out var token) ? token : 0;
        var page = log.List(
            new AuditQuery(Time("since"), Time("until"), Text("operation"), Text("accessKeyId"), Text("target"), failed, NewestFirst: order == "newest"),
            after,
            max.Value ?? 100);
        var events = new JsonArray();
        foreach (var e in page.Items)
        {
            var item = new JsonObject
            {
                ["time"] = DateTimeOffset.FromUnixTimeMilliseconds(e.TimeMs).ToString("O", CultureInfo.InvariantCulture),
                ["accessKeyId"] = e.AccessKeyId,
                ["operation"] = e.Operation,
                ["method"] = e.Method,
                ["path"] = e.Path,
                ["target"] = e.Target,
                ["status"] = e.Status,
            };
            if (e.ErrorType is not null)
            {
                item["errorType"] = e.ErrorType;
            }

            events.Add((JsonNode)item);
        }

        var body = new JsonObject { ["events"] = events };
        AwsResults.WithNext(body, page.NextToken);

        return AwsResults.Json(body);

        string? Text(string name) => q[name].ToString() is { Length: > 0 } v ? v : null;
    }
}
