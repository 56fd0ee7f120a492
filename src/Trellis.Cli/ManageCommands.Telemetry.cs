using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace Trellis.Cli;

/// <summary><c>trellis query …</c> and <c>trellis export …</c>: the time-series store.</summary>
internal static partial class ManageCommands
{
    private static readonly Option<string?> From = new("--from") { Description = "Start: ISO-8601 or epoch ms (default: an hour before --to)" };
    private static readonly Option<string?> To = new("--to") { Description = "End (exclusive): ISO-8601 or epoch ms (default: now)" };

    private static Command Query()
    {
        var thing = new Argument<string>("thing") { Description = "Thing name" };
        var measure = new Argument<string>("measure") { Description = "Measure, e.g. temp" };
        var bucket = new Option<int?>("--bucket") { Description = "Downsample into buckets of this many seconds (avg, min, max, sum, count, first, last)" };
        var limit = new Option<int?>("--limit") { Description = "Most raw points to return (default 10 000)" };
        var query = new Command("query", "Read a thing's measure from the time-series store: raw points, or downsampled with --bucket. --output csv for spreadsheets.") { thing, measure, From, To, bucket, limit };
        query.SetAction((r, ct) =>
        {
            var window = Query(("from", r.GetValue(From)), ("to", r.GetValue(To)), ("limit", r.GetValue(limit)?.ToString(CultureInfo.InvariantCulture)),
                ("bucketSeconds", r.GetValue(bucket)?.ToString(CultureInfo.InvariantCulture)));
            var path = $"/api/telemetry/things/{ApiClient.Segment(r.GetValue(thing)!)}/{ApiClient.Segment(r.GetValue(measure)!)}" + (r.GetValue(bucket) is null ? string.Empty : "/downsample");
            var csv = r.GetValue(Output) == "csv";
            return RunAsync(r, api => api.SendAsync(HttpMethod.Get, path, window, null, ct), body =>
            {
                var rows = body["points"] ?? body["buckets"];
                string[] columns = body["points"] is not null ? ["t", "v"] : ["t", "avg", "min", "max", "sum", "count", "first", "last"];
                if (csv)
                {
                    Console.WriteLine("time," + string.Join(',', columns.Skip(1)));
                    foreach (var row in rows?.AsArray() ?? [])
                    {
                        Console.WriteLine(Iso(row!["t"]) + "," + string.Join(',', columns.Skip(1).Select(c => Text(row[c]))));
                    }

                    return;
                }

                var table = new Table().Border(TableBorder.Rounded).AddColumn("time");
                foreach (var column in columns.Skip(1))
                {
                    table.AddColumn(column);
                }

                foreach (var row in rows?.AsArray() ?? [])
                {
                    table.AddRow([Iso(row!["t"]), .. columns.Skip(1).Select(c => Markup.Escape(Text(row[c])))]);
                }

                AnsiConsole.Write(table);
            }, printsCsv: true);
        });
        return query;
    }

    private static Command Export()
    {
        var format = new Option<string>("--format") { Description = "csv or parquet", DefaultValueFactory = _ => "csv" };
        format.AcceptOnlyFromAmong("csv", "parquet");
        var output = new Option<FileInfo>("--out") { Description = "File to write", Required = true };
        var thing = new Option<string?>("--thing") { Description = "Only this thing" };
        var measure = new Option<string?>("--measure") { Description = "Only this measure" };
        var export = new Command("export", "Export a time range of the store as CSV or Parquet (columns time, thing, measure, value) for Spark and BI tools.") { format, output, From, To, thing, measure };
        export.SetAction((r, ct) =>
        {
            var query = Query(("format", r.GetValue(format)), ("from", r.GetValue(From)), ("to", r.GetValue(To)), ("thing", r.GetValue(thing)), ("measure", r.GetValue(measure)));
            return RunAsync(r, api => api.DownloadAsync("/api/telemetry/export", query, r.GetValue(output)!.FullName, ct),
                body => AnsiConsole.MarkupLine($"[green]wrote[/] {Markup.Escape(body["file"]!.GetValue<string>())} ({body["bytes"]} bytes)"));
        });
        return export;
    }

    private static string Iso(JsonNode? epochMs) =>
        epochMs is JsonValue v && v.TryGetValue<long>(out var ms) ? DateTimeOffset.FromUnixTimeMilliseconds(ms).ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture) : Text(epochMs);
}
