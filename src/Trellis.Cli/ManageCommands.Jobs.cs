using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace Trellis.Cli;

/// <summary><c>trellis jobs …</c>: AWS IoT Jobs (create, list, describe with a live rollout view, cancel, delete, executions).</summary>
internal static partial class ManageCommands
{
    private static readonly string[] Statuses = ["QUEUED", "IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "CANCELED", "REMOVED"];

    /// <summary>The states an execution ends in, as jobProcessDetails names their counts.</summary>
    private static readonly string[] Finished = ["Succeeded", "Failed", "Rejected", "TimedOut", "Canceled", "Removed"];

    /// <summary>
    /// The job document of an over-the-air update, in AWS's OTA form (<c>afr_ota.files[]</c>, the
    /// file's signature under <c>sig-sha256-ecdsa</c>, a pre-signed HTTPS link as
    /// <c>update_data_url</c>) with Trellis's additions: the image's SHA-256 and version.
    /// </summary>
    private static JsonObject OtaDocument(JsonNode firmware, string? version, string? stream)
    {
        var file = new JsonObject
        {
            ["filepath"] = Text(firmware["name"]),
            ["filesize"] = firmware["size"]!.GetValue<long>(),
            ["fileid"] = 0,
            ["certfile"] = "code-signing.pem",
            ["sig-sha256-ecdsa"] = Text(firmware["signature"]),
            ["sha256"] = Text(firmware["sha256"]),
        };
        if (version is not null)
        {
            file["version"] = version;
        }

        if (stream is not null)
        {
            return new JsonObject { ["afr_ota"] = new JsonObject { ["protocols"] = new JsonArray("MQTT"), ["streamname"] = stream, ["files"] = new JsonArray(file) } };
        }

        file["update_data_url"] = Text(firmware["placeholder"]);
        file["auth_scheme"] = "aws.s3.presigned";
        return new JsonObject { ["afr_ota"] = new JsonObject { ["protocols"] = new JsonArray("HTTP"), ["files"] = new JsonArray(file) } };
    }

    private static Command Jobs()
    {
        var jobId = new Argument<string>("job-id") { Description = "Job id (letters, digits, - and _)" };
        var things = new Option<string[]>("--thing") { Description = "A thing to run the job on (repeatable)" };
        var groups = new Option<string[]>("--group") { Description = "A thing group (and its child groups) to run the job on (repeatable)" };
        var document = new Option<string?>("--document") { Description = "The job document, JSON, e.g. '{\"operation\":\"reboot\"}'" };
        var documentFile = new Option<FileInfo?>("--document-file") { Description = "The job document from a JSON file" };
        var template = new Option<string?>("--template") { Description = "A job template id to start from" };
        var continuous = new Option<bool>("--continuous") { Description = "Also reach things that join the groups later (CONTINUOUS)" };
        var perMinute = new Option<int?>("--max-per-minute") { Description = "Rollout rate: at most this many things reached a minute" };
        var abortPercent = new Option<double?>("--abort-percent") { Description = "Cancel the job when this share (%) of executed things failed" };
        var abortMin = new Option<int?>("--abort-min") { Description = "… once at least this many things have executed (default 10)" };
        var timeout = new Option<long?>("--timeout-minutes") { Description = "An execution still IN_PROGRESS this long after it started is TIMED_OUT" };
        var description = new Option<string?>("--description") { Description = "What the job does" };
        var firmware = new Option<string?>("--firmware") { Description = "An over-the-air update to a signed firmware image: the job document (AWS's afr_ota form) is made from it" };
        var version = new Option<string?>("--version") { Description = "With --firmware: the version the image brings, reported by devices once it runs" };
        var protocol = new Option<string>("--protocol") { Description = "With --firmware: how devices fetch the image: HTTP (a pre-signed HTTPS link, default) or MQTT (blocks from a stream named after the job)", DefaultValueFactory = _ => "HTTP" };
        protocol.AcceptOnlyFromAmong("HTTP", "MQTT");

        var create = new Command("create", "Create a job on things and groups.") { jobId, things, groups, document, documentFile, template, firmware, version, protocol, continuous, perMinute, abortPercent, abortMin, timeout, description };
        create.SetAction(async (r, ct) =>
        {
            var text = r.GetValue(document);
            if (r.GetValue(documentFile) is { } file)
            {
                if (!file.Exists)
                {
                    return Usage($"{file.FullName} does not exist");
                }

                text = await File.ReadAllTextAsync(file.FullName, ct);
            }

            if (text is null && r.GetValue(template) is null && r.GetValue(firmware) is null)
            {
                return Usage("give the job document with --document or --document-file, a --firmware image, or a --template");
            }

            var thingNames = r.GetValue(things) ?? [];
            var groupNames = r.GetValue(groups) ?? [];
            if (thingNames.Length + groupNames.Length == 0)
            {
                return Usage("give at least one --thing or --group to run the job on");
            }

            return await RunAsync(r, async api =>
            {
                // The ARNs come from the server, whose region and account they carry.
                var targets = new JsonArray();
                foreach (var (kind, name) in thingNames.Select(t => ("things", t)).Concat(groupNames.Select(g => ("thing-groups", g))))
                {
                    var found = await api.SendAsync(HttpMethod.Get, $"/{kind}/" + ApiClient.Segment(name), null, null, ct);
                    if (!found.Ok)
                    {
                        return found;
                    }

                    targets.Add((JsonNode?)JsonValue.Create(found.Body![kind == "things" ? "thingArn" : "thingGroupArn"]!.GetValue<string>()));
                }

                if (r.GetValue(firmware) is { } image)
                {
                    var described = await api.SendAsync(HttpMethod.Get, "/api/firmware/" + ApiClient.Segment(image), null, null, ct);
                    if (!described.Ok)
                    {
                        return described;
                    }

                    if (described.Body!["signature"] is null)
                    {
                        return new ApiAnswer(400, null, "InvalidRequestException", $"Firmware '{image}' is not signed: devices refuse unsigned images. Sign it with: trellis firmware sign {image}");
                    }

                    string? stream = null;
                    if (r.GetValue(protocol) == "MQTT")
                    {
                        // A stream named after the job serves the image in blocks over MQTT (AWS's MQTT file delivery).
                        stream = r.GetValue(jobId)!;
                        var files = new JsonArray(new JsonObject { ["fileId"] = 0, ["s3Location"] = new JsonObject { ["bucket"] = "trellis-firmware", ["key"] = image } });
                        var made = await api.SendAsync(HttpMethod.Post, "/streams/" + ApiClient.Segment(stream), null,
                            new JsonObject { ["files"] = files, ["roleArn"] = "arn:aws:iam::000000000000:role/trellis-streams", ["description"] = $"firmware {image} for job {stream}" }, ct);
                        if (!made.Ok)
                        {
                            return made;
                        }
                    }

                    text = OtaDocument(described.Body!, r.GetValue(version), stream).ToJsonString();
                }

                var body = new JsonObject { ["targets"] = targets, ["targetSelection"] = r.GetValue(continuous) ? "CONTINUOUS" : "SNAPSHOT" };
                if (text is not null)
                {
                    body["document"] = text;
                }

                if (r.GetValue(template) is { } id)
                {
                    var described = await api.SendAsync(HttpMethod.Get, "/job-templates/" + ApiClient.Segment(id), null, null, ct);
                    if (!described.Ok)
                    {
                        return described;
                    }

                    body["jobTemplateArn"] = described.Body!["jobTemplateArn"]!.GetValue<string>();
                }

                if (r.GetValue(perMinute) is { } rate)
                {
                    body["jobExecutionsRolloutConfig"] = new JsonObject { ["maximumPerMinute"] = rate };
                }

                if (r.GetValue(abortPercent) is { } percent)
                {
                    body["abortConfig"] = new JsonObject
                    {
                        ["criteriaList"] = new JsonArray(new JsonObject { ["failureType"] = "FAILED", ["action"] = "CANCEL", ["thresholdPercentage"] = percent, ["minNumberOfExecutedThings"] = r.GetValue(abortMin) ?? 10 }),
                    };
                }

                if (r.GetValue(timeout) is { } minutes)
                {
                    body["timeoutConfig"] = new JsonObject { ["inProgressTimeoutInMinutes"] = minutes };
                }

                if (r.GetValue(description) is { } what)
                {
                    body["description"] = what;
                }

                return await api.SendAsync(HttpMethod.Put, "/jobs/" + ApiClient.Segment(r.GetValue(jobId)!), null, body, ct);
            }, body => AnsiConsole.MarkupLine($"[green]created[/] job {Markup.Escape(Text(body["jobId"]))} ({Markup.Escape(Text(body["jobArn"]))})"));
        });

        var status = new Option<string?>("--status") { Description = "Only jobs (or executions) in this status" };
        var list = new Command("list", "List jobs.") { status };
        list.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/jobs", Query(("status", r.GetValue(status))), null, ct),
            body => Table(body["jobs"], "jobId", "status", "targetSelection", "createdAt", "completedAt")));

        var watch = new Option<bool>("--watch") { Description = "Refresh every second until the job is no longer IN_PROGRESS (Ctrl-C stops)" };
        var describe = new Command("describe", "Show a job and where its rollout stands: things per status, rate, abort state.") { jobId, watch };
        describe.SetAction(async (r, ct) =>
        {
            var path = "/jobs/" + ApiClient.Segment(r.GetValue(jobId)!);
            if (!r.GetValue(watch) || r.GetValue(Output) == "json")
            {
                return await RunAsync(r, api => api.SendAsync(HttpMethod.Get, path, null, null, ct), body => Rollout(body["job"]!, null));
            }

            JsonNode? previous = null;
            var previousAt = DateTime.UtcNow;
            while (true)
            {
                JsonNode? job = null;
                var code = await RunAsync(r, api => api.SendAsync(HttpMethod.Get, path, null, null, ct), body =>
                {
                    job = body["job"];
                    var now = DateTime.UtcNow;
                    AnsiConsole.MarkupLine($"[grey]{now:HH:mm:ss}[/]");
                    Rollout(job!, previous is null ? null : (Done(job!) - Done(previous)) / Math.Max(0.001, (now - previousAt).TotalSeconds));
                    previous = job;
                    previousAt = now;
                });
                if (code != 0 || Text(job?["status"]) is not ("IN_PROGRESS" or "SCHEDULED"))
                {
                    return code;
                }

                await Task.Delay(TimeSpan.FromSeconds(1), ct);
            }
        });

        var force = new Option<bool>("--force") { Description = "Also cancel (or delete) executions that are IN_PROGRESS" };
        var reasonCode = new Option<string?>("--reason-code") { Description = "Why, as a code (kept on the job)" };
        var comment = new Option<string?>("--comment") { Description = "Why, in words (kept on the job)" };
        var cancel = new Command("cancel", "Cancel a job: things not reached yet never are, QUEUED executions become CANCELED.") { jobId, force, reasonCode, comment };
        cancel.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Put, "/jobs/" + ApiClient.Segment(r.GetValue(jobId)!) + "/cancel",
            r.GetValue(force) ? "force=true" : null, new JsonObject { ["reasonCode"] = r.GetValue(reasonCode), ["comment"] = r.GetValue(comment) }, ct),
            _ => AnsiConsole.MarkupLine("[green]canceled[/]")));

        var delete = new Command("delete", "Delete a job and its executions (one still running needs --force).") { jobId, force };
        delete.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Delete, "/jobs/" + ApiClient.Segment(r.GetValue(jobId)!), r.GetValue(force) ? "force=true" : null, null, ct),
            _ => AnsiConsole.MarkupLine("[green]deleted[/]")));

        var executions = new Command("executions", "The job's executions, one per thing.") { jobId, status };
        executions.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/jobs/" + ApiClient.Segment(r.GetValue(jobId)!) + "/things", Query(("status", r.GetValue(status))), null, ct),
            body => Table(Flatten(body["executionSummaries"], "thingArn"), "thing", "status", "executionNumber", "retryAttempt", "queuedAt", "startedAt", "lastUpdatedAt")));

        var thingName = new Argument<string>("thing") { Description = "Thing name" };
        var thing = new Command("thing", "A thing's job executions.") { thingName, status };
        thing.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/things/" + ApiClient.Segment(r.GetValue(thingName)!) + "/jobs", Query(("status", r.GetValue(status))), null, ct),
            body => Table(Flatten(body["executionSummaries"], "jobId"), "jobId", "status", "executionNumber", "retryAttempt", "queuedAt", "lastUpdatedAt")));

        return Group("jobs", "Jobs: run a document on things and groups, with staged rollouts, aborts and time-outs (AWS IoT Jobs).", [create, list, describe, cancel, delete, executions, thing]);
    }

    /// <summary>Executions that reached a terminal state (a rate of progress between two refreshes).</summary>
    private static double Done(JsonNode job)
    {
        var details = job["jobProcessDetails"];
        return Finished.Sum(s => details?[$"numberOf{s}Things"]?.GetValue<int>() ?? 0);
    }

    /// <summary>The rollout view: the job's state, things per execution status, rate and abort rules.</summary>
    private static void Rollout(JsonNode job, double? perSecond)
    {
        var details = job["jobProcessDetails"];
        var table = new Table().Border(TableBorder.Rounded).AddColumn("job").AddColumn(Markup.Escape(Text(job["jobId"])));
        table.AddRow("status", Markup.Escape(Text(job["status"]) + (job["reasonCode"] is { } reason ? $" ({Text(reason)})" : string.Empty)));
        if (job["comment"] is { } said)
        {
            table.AddRow("comment", Markup.Escape(Text(said)));
        }

        table.AddRow("targets", Markup.Escape(string.Join(", ", job["targets"]?.AsArray().Select(t => Text(t)) ?? [])) + $" ({Markup.Escape(Text(job["targetSelection"]))})");
        foreach (var s in Statuses)
        {
            var name = "numberOf" + string.Concat(s.Split('_').Select(p => p[0] + p[1..].ToLowerInvariant())) + "Things";
            table.AddRow(s.ToLowerInvariant().Replace('_', ' '), (details?[name]?.GetValue<int>() ?? 0).ToString(CultureInfo.InvariantCulture));
        }

        if (perSecond is { } rate)
        {
            table.AddRow("finishing", $"{rate:0.#} things/s");
        }

        if (job["jobExecutionsRolloutConfig"] is { } rollout)
        {
            table.AddRow("rollout", Markup.Escape(rollout.ToJsonString()));
        }

        if (job["abortConfig"] is { } abort)
        {
            table.AddRow("abort", Markup.Escape(abort.ToJsonString()));
        }

        AnsiConsole.Write(table);
    }

    /// <summary>Execution summaries with their nested <c>jobExecutionSummary</c> lifted up beside <paramref name="key"/>.</summary>
    private static JsonArray Flatten(JsonNode? summaries, string key)
    {
        var rows = new JsonArray();
        foreach (var summary in summaries?.AsArray() ?? [])
        {
            var row = new JsonObject { [key] = summary?[key]?.DeepClone() };
            if (key == "thingArn")
            {
                row["thing"] = Text(summary?[key]).Split('/')[^1];
            }

            foreach (var (name, value) in summary?["jobExecutionSummary"]?.AsObject() ?? [])
            {
                row[name] = value?.DeepClone();
            }

            rows.Add((JsonNode)row);
        }

        return rows;
    }
}
