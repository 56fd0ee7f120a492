using System.Globalization;
using Trellis.Registry;
using Trellis.Telemetry;

namespace Trellis.Api;

/// <summary><c>/api/telemetry/…</c>: ranges, downsampling and latest values from the time-series store (Trellis only).</summary>
public static class TelemetryApi
{
    private const int MaxPoints = 100_000;

    public static IEndpointRouteBuilder MapTelemetryApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/telemetry/things/{thing}", async (string thing, TelemetryStore store) =>
        {
            await store.FlushAsync(TimeSpan.FromSeconds(2));
            return AwsResults.Json(new JsonObject
            {
                ["thing"] = thing,
                ["measures"] = new JsonArray([.. store.LatestOf(thing).Select(p => (JsonNode)new JsonObject { ["measure"] = p.Measure, ["t"] = p.TimestampMs, ["v"] = p.Value })]),
            });
        }).WithName("ListThingTelemetry");
        app.MapGet("/api/telemetry/things/{thing}/{measure}", RangeAsync).WithName("GetTelemetry");
        app.MapGet("/api/telemetry/things/{thing}/{measure}/downsample", (string thing, string measure, HttpRequest request, TelemetryStore store) => DownsampleAsync(thing, measure, request, store))
            .WithName("DownsampleTelemetry");
        app.MapGet("/api/telemetry/measures/{measure}/downsample", (string measure, HttpRequest request, TelemetryStore store) => DownsampleAsync(null, measure, request, store))
            .WithName("DownsampleTelemetryForAllThings");
        app.MapGet("/api/telemetry/groups/{group}/latest/{measure}", LatestForGroup).WithName("GetLatestTelemetryForGroup");
        app.MapGet("/api/telemetry/export", ExportAsync).WithName("ExportTelemetry");
        app.MapGet("/api/telemetry/measures/{measure}/summary", SummaryAsync).WithName("SummarizeTelemetry");
        app.MapGet("/api/telemetry/retention", (TelemetryStore store) => AwsResults.Json(new JsonObject
        {
            ["retention"] = new JsonObject([.. store.Retention().Select(r => KeyValuePair.Create(r.Key, (JsonNode?)r.Value))]),
        })).WithName("GetTelemetryRetention");
        app.MapPut("/api/telemetry/retention/{measure}", SetRetentionAsync).WithName("SetTelemetryRetention");

        // A read: the name starts with List so that viewer keys may use it and the audit log skips it.
        app.MapPost("/api/telemetry/sql", SqlAsync).WithName("ListTelemetryBySql");
        return app;
    }

    private static async Task<IResult> RangeAsync(string thing, string measure, HttpRequest request, TelemetryStore store)
    {
        var window = Window(request);
        var limit = RequestBody.QueryInt(request, "limit");
        if (!window.IsSuccess || !limit.IsSuccess)
        {
            return AwsResults.Error(window.Error ?? limit.Error!);
        }

        await store.FlushAsync(TimeSpan.FromSeconds(2));
        var (from, to) = window.Value;
        var points = store.Range(thing, measure, from, to, Math.Min(limit.Value ?? 10_000, MaxPoints));
        return AwsResults.Json(new JsonObject
        {
            ["thing"] = thing,
            ["measure"] = measure,
            ["from"] = from,
            ["to"] = to,
            ["points"] = new JsonArray([.. points.Select(p => (JsonNode)new JsonObject { ["t"] = p.TimestampMs, ["v"] = p.Value })]),
        });
    }

    private static async Task<IResult> DownsampleAsync(string? thing, string measure, HttpRequest request, TelemetryStore store)
    {
        var window = Window(request);
        var bucket = RequestBody.QueryInt(request, "bucketSeconds");
        if (!window.IsSuccess || !bucket.IsSuccess)
        {
            return AwsResults.Error(window.Error ?? bucket.Error!);
        }

        var (from, to) = window.Value;
        var seconds = bucket.Value ?? 60;
        if ((to - from) / 1000 / seconds > MaxPoints)
        {
            return AwsResults.Error(new TrellisError.InvalidRequest($"{(to - from) / 1000 / seconds} buckets is too many (at most {MaxPoints}): use a larger bucketSeconds or a shorter range."));
        }

        await store.FlushAsync(TimeSpan.FromSeconds(2));
        var buckets = store.Downsample(thing, measure, from, to, seconds);
        return AwsResults.Json(new JsonObject
        {
            ["thing"] = thing,
            ["measure"] = measure,
            ["bucketSeconds"] = seconds,
            ["buckets"] = System.Text.Json.JsonSerializer.SerializeToNode(buckets, ApiJson.Default.IReadOnlyListTelemetryBucket),
        });
    }

    private static IResult LatestForGroup(string group, string measure, RegistryService registry, TelemetryStore store)
    {
        var things = new List<string>();
        string? token = null;
        do
        {
            var page = registry.ListThingsInThingGroup(group, recursive: true, token, 250);
            if (!page.IsSuccess)
            {
                return AwsResults.Error(page.Error!);
            }

            things.AddRange(page.Value!.Items);
            token = page.Value.NextToken;
        }
        while (token is not null);

        var latest = store.Latest(measure, things);
        return AwsResults.Json(new JsonObject
        {
            ["group"] = group,
            ["measure"] = measure,
            ["things"] = things.Count,
            ["latest"] = new JsonArray([.. latest.Select(p => (JsonNode)new JsonObject { ["thing"] = p.Thing, ["t"] = p.TimestampMs, ["v"] = p.Value })]),
        });
    }

    /// <summary>Body <c>{"sql": "SELECT …", "maxRows": N}</c>: a read-only query over the view <c>points</c>.</summary>
    private static async Task<IResult> SqlAsync(HttpRequest request, TelemetryStore store)
    {
        var body = await RequestBody.ReadAsync<TelemetrySqlBody>(request);
        if (body.Value is not { } input)
        {
            return AwsResults.Error(body.Error!);
        }

        await store.FlushAsync(TimeSpan.FromSeconds(2));

        // The query runs on a pool thread; the answer waits for it (its slot is held until the engine has stopped).
        try
        {
            var (columns, rows, truncated) = await Task.Run(() => store.Query(input.Sql, (int)Math.Clamp(input.MaxRows ?? 10_000, 1, int.MaxValue)), request.HttpContext.RequestAborted);
            return AwsResults.Json(new JsonObject
            {
                ["columns"] = new JsonArray([.. columns.Select(c => (JsonNode)c)]),
                ["rows"] = new JsonArray([.. rows.Select(r => (JsonNode)new JsonArray([.. r.Select(Cell)]))]),
                ["truncated"] = truncated,
            });
        }
        catch (TelemetryQueryException e)
        {
            return AwsResults.Error(e.Refusal switch
            {
                TelemetryQueryRefusal.Throttled => new TrellisError.Throttling(e.Message),
                TelemetryQueryRefusal.ResultTooLarge => new TrellisError.RequestEntityTooLarge(e.Message),
                _ => new TrellisError.InvalidRequest(e.Message),
            });
        }
    }

    private static JsonNode? Cell(object? value) => value switch
    {
        null => null,
        DateTime time => DateTime.SpecifyKind(time, DateTimeKind.Utc).ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture),
        string text => text,
        bool flag => flag,
        decimal number => (double)number,
        System.Numerics.BigInteger big => (double)big,
        IConvertible number when number.GetTypeCode() is >= TypeCode.SByte and <= TypeCode.Double => number.ToDouble(CultureInfo.InvariantCulture),
        _ => value.ToString(),
    };

    /// <summary>Body <c>{"days": N}</c> keeps the measure ("*": every measure without its own) N days; <c>{"days": null}</c> keeps it forever.</summary>
    private static async Task<IResult> SetRetentionAsync(string measure, HttpRequest request, TelemetryStore store)
    {
        var body = await RequestBody.ReadObjectAsync(request, request.HttpContext.RequestAborted);
        if (!body.IsSuccess)
        {
            return AwsResults.Error(body.Error!);
        }

        var days = RequestBody.OptionalLong(body.Value!, "days");
        if (!days.IsSuccess || days.Value is < 1 or > 36_500)
        {
            return AwsResults.Error(days.Error ?? new TrellisError.InvalidRequest("days must be a whole number from 1 to 36500, or null to keep the measure forever."));
        }

        store.SetRetention(measure, (int?)days.Value);

        // Applied at once (and again every ten minutes): what the new setting expires is gone when the call returns.
        await Task.Run(store.ApplyRetention, request.HttpContext.RequestAborted);
        return AwsResults.Empty();
    }

    /// <summary>avg, min, max, sum and count of a measure over a range, for all things or <c>?thing=</c>.</summary>
    private static async Task<IResult> SummaryAsync(string measure, HttpRequest request, TelemetryStore store)
    {
        var window = Window(request);
        if (!window.IsSuccess)
        {
            return AwsResults.Error(window.Error!);
        }

        await store.FlushAsync(TimeSpan.FromSeconds(2));
        var (from, to) = window.Value;
        var thing = RequestBody.QueryString(request, "thing");
        var summary = store.Summary(thing, measure, from, to);
        return AwsResults.Json(new JsonObject
        {
            ["thing"] = thing,
            ["measure"] = measure,
            ["from"] = from,
            ["to"] = to,
            ["avg"] = summary.Avg,
            ["min"] = summary.Min,
            ["max"] = summary.Max,
            ["sum"] = summary.Sum,
            ["count"] = summary.Count,
        });
    }

    /// <summary>CSV or Parquet of a time range (optionally one thing or measure), streamed as a file.</summary>
    private static async Task<IResult> ExportAsync(HttpRequest request, TelemetryStore store)
    {
        var window = Window(request);
        if (!window.IsSuccess)
        {
            return AwsResults.Error(window.Error!);
        }

        var format = RequestBody.QueryString(request, "format") ?? "csv";
        if (format is not ("csv" or "parquet"))
        {
            return AwsResults.Error(new TrellisError.InvalidRequest($"format must be csv or parquet, not '{format}'."));
        }

        await store.FlushAsync(TimeSpan.FromSeconds(2));
        var file = store.NewExportFile(format);
        var (from, to) = window.Value;
        store.Export(file, format == "parquet", RequestBody.QueryString(request, "thing"), RequestBody.QueryString(request, "measure"), from, to);
        var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 65536, FileOptions.DeleteOnClose | FileOptions.Asynchronous);
        return Results.File(stream, format == "parquet" ? "application/vnd.apache.parquet" : "text/csv", $"telemetry-{from}-{to}.{format}");
    }

    /// <summary><c>from</c> and <c>to</c> as ISO-8601 or epoch milliseconds; default the last hour.</summary>
    private static Result<(long From, long To)> Window(HttpRequest request)
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var to = Time(request, "to", now);
        var from = Time(request, "from", (to.Value == 0 ? now : to.Value) - 3_600_000);
        if (!to.IsSuccess || !from.IsSuccess)
        {
            return to.Error ?? from.Error!;
        }

        return from.Value < to.Value
            ? (from.Value, to.Value)
            : new TrellisError.InvalidRequest("'from' must be before 'to'.");
    }

    private static Result<long> Time(HttpRequest request, string name, long fallback)
    {
        var raw = request.Query[name].ToString();
        if (raw.Length == 0)
        {
            return fallback;
        }

        if (long.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out var ms))
        {
            return ms;
        }

        return DateTimeOffset.TryParse(raw, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time)
            ? time.ToUnixTimeMilliseconds()
            : new TrellisError.InvalidRequest($"'{name}' must be an ISO-8601 time or epoch milliseconds, not '{raw}'.");
    }
}
