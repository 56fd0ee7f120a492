using System.CommandLine;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace Trellis.Cli;

/// <summary>
/// Management commands over the API (SigV4-signed, as boto3 does): <c>things</c>, <c>types</c>,
/// <c>groups</c>, <c>certs</c>, <c>policies</c>, <c>tokens</c>, <c>templates</c>, <c>cas</c>, <c>audit</c>. Tables for people, <c>--output json</c> for scripts. Exit codes:
/// 0 done, 1 the API refused (the AWS error is printed), 3 the endpoint cannot be reached or no
/// credentials were found.
/// </summary>
internal static partial class ManageCommands
{
    private static readonly Option<string> Endpoint = new("--endpoint")
    {
        Description = "Trellis API (env TRELLIS_ENDPOINT; default http://127.0.0.1:8080)",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("TRELLIS_ENDPOINT") is { Length: > 0 } e ? e : "http://127.0.0.1:8080",
        Recursive = true,
    };

    public static Option<string> DataOption => Data;

    public static Option<string> OutputOption => Output;

    public static Option<string?> ProfileOption => Profile;

    private static readonly Option<string> Data = new("--data")
    {
        Description = "Data folder whose 'credentials' file to use (env TRELLIS_DATA; default ./data)",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("TRELLIS_DATA") is { Length: > 0 } d ? d : "./data",
        Recursive = true,
    };

    private static readonly Option<string?> Profile = new("--profile") { Description = "Credentials profile (default: AWS_PROFILE, else 'trellis')", Recursive = true };

    private static readonly Option<string> Output = new("--output")
    {
        Description = "table (default), json or csv",
        DefaultValueFactory = _ => "table",
        Recursive = true,
    };

    public static IEnumerable<Command> Create()
    {
        Output.AcceptOnlyFromAmong("table", "json", "csv");
        yield return Things();
        yield return Types();
        yield return Groups();
        yield return Certificates();
        yield return Policies();
        yield return Tokens();
        yield return Templates();
        yield return CaCertificates();
        yield return TopicRules();
        yield return RuleDestinations();
        yield return Outbox();
        yield return Jobs();
        yield return Fleet();
        yield return Alarms();
        yield return Notify();
        yield return Firmware();
        yield return Query();
        yield return Export();
        yield return Audit();
        yield return Users();
    }

    public static void AddGlobalOptions(RootCommand root)
    {
        root.Options.Add(Endpoint);
        root.Options.Add(Data);
        root.Options.Add(Profile);
        root.Options.Add(Output);
    }

    private static Command Fleet()
    {
        var summary = new Command("summary", "The fleet at a glance: things, online now, MQTT connections, messages/s in and out, running jobs, storage.");
        summary.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/api/fleet/summary", null, null, ct), Fields));

        var mode = new Option<string?>("--mode") { Description = "OFF, REGISTRY or REGISTRY_AND_SHADOW (without it: show the configuration)" };
        mode.AcceptOnlyFromAmong("OFF", "REGISTRY", "REGISTRY_AND_SHADOW");
        var connectivity = new Option<bool>("--connectivity") { Description = "Index connectivity (connected, timestamp, disconnectReason)" };
        var named = new Option<string[]>("--named-shadow") { Description = "Index this named shadow too (repeatable, up to 10)" };
        var indexing = new Command("indexing", "Show or set what the fleet index holds (AWS's UpdateIndexingConfiguration).") { mode, connectivity, named };
        indexing.SetAction((r, ct) =>
        {
            if (r.GetValue(mode) is not { } thingMode)
            {
                return RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/indexing/config", null, null, ct), body => Fields(body["thingIndexingConfiguration"] ?? body));
            }

            var shadows = r.GetValue(named) ?? [];
            var configuration = new JsonObject
            {
                ["thingIndexingMode"] = thingMode,
                ["thingConnectivityIndexingMode"] = r.GetValue(connectivity) ? "STATUS" : "OFF",
                ["namedShadowIndexingMode"] = shadows.Length > 0 ? "ON" : "OFF",
            };
            if (shadows.Length > 0)
            {
                configuration["filter"] = new JsonObject { ["namedShadowNames"] = new JsonArray([.. shadows.Select(n => (JsonNode)n)]) };
            }

            return RunAsync(r, api => api.SendAsync(HttpMethod.Post, "/indexing/config", null, new JsonObject { ["thingIndexingConfiguration"] = configuration }, ct),
                _ => AnsiConsole.MarkupLine("[green]indexing set[/] (the index is rebuilt in the background: trellis fleet search answers once it is ACTIVE)"));
        });

        var queryString = new Argument<string>("query") { Description = "AWS fleet-index query, e.g. 'shadow.reported.temp>30 AND connectivity.connected:true'" };
        var max = new Option<int?>("--max") { Description = "At most this many (1-100, default 100)" };
        var search = new Command("search", "Find things with the fleet index (docs/monitoring.md, query syntax).") { queryString, max };
        search.SetAction((r, ct) => RunAsync(r,
            api => api.SendAsync(HttpMethod.Post, "/indices/search", null, WithoutNulls(new JsonObject { ["queryString"] = r.GetValue(queryString), ["maxResults"] = r.GetValue(max) }), ct),
            body => Table(new JsonArray([.. (body["things"]?.AsArray() ?? []).Select(t => (JsonNode)new JsonObject
            {
                ["thingName"] = t?["thingName"]?.DeepClone(),
                ["thingTypeName"] = t?["thingTypeName"]?.DeepClone(),
                ["connected"] = t?["connectivity"]?["connected"]?.DeepClone(),
                ["groups"] = string.Join(",", t?["thingGroupNames"]?.AsArray().Select(g => g?.GetValue<string>()) ?? []),
            })]), "thingName", "thingTypeName", "connected", "groups")));

        var field = new Option<string?>("--field") { Description = "Field to aggregate (a number for statistics), e.g. shadow.reported.temp" };
        var statsQuery = new Argument<string>("query") { Description = "AWS fleet-index query ('*' for the whole fleet)" };
        var stats = new Command("stats", "Count, average, sum, minimum, maximum and standard deviation of a field over the things a query finds (AWS's GetStatistics).") { statsQuery, field };
        stats.SetAction((r, ct) => RunAsync(r,
            api => api.SendAsync(HttpMethod.Post, "/indices/statistics", null, WithoutNulls(new JsonObject { ["queryString"] = r.GetValue(statsQuery), ["aggregationField"] = r.GetValue(field) }), ct),
            body => Fields(body["statistics"] ?? body)));
        return Group("fleet", "The fleet as a whole: summary, the fleet index and search (docs/monitoring.md).", [summary, indexing, search, stats]);
    }

    private static Command Things()
    {
        var name = new Argument<string>("name") { Description = "Thing name" };
        var type = new Option<string?>("--type") { Description = "Thing type" };
        var attributes = new Option<string[]>("--attribute") { Description = "Attribute as key=value (repeatable)" };
        var max = new Option<int?>("--max") { Description = "At most this many" };

        var list = new Command("list", "List things.") { max };
        list.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/things", Query(("maxResults", r.GetValue(max)?.ToString(System.Globalization.CultureInfo.InvariantCulture))), null, ct),
            body => Table(body["things"], "thingName", "thingTypeName", "version")));

        var create = new Command("create", "Create a thing.") { name, type, attributes };
        create.SetAction((r, ct) =>
        {
            var body = new JsonObject();
            if (r.GetValue(type) is { } t)
            {
                body["thingTypeName"] = t;
            }

            var pairs = r.GetValue(attributes) ?? [];
            if (pairs.Length > 0)
            {
                var map = new JsonObject();
                foreach (var pair in pairs)
                {
                    var eq = pair.IndexOf('=', StringComparison.Ordinal);
                    if (eq <= 0)
                    {
                        return Task.FromResult(Usage($"--attribute wants key=value, not '{pair}'"));
                    }

                    map[pair[..eq]] = pair[(eq + 1)..];
                }

                body["attributePayload"] = new JsonObject { ["attributes"] = map };
            }

            return RunAsync(r, api => api.SendAsync(HttpMethod.Post, "/things/" + ApiClient.Segment(r.GetValue(name)!), null, body, ct), Fields);
        });

        var describe = new Command("describe", "Show a thing, with its connectivity (online, since when, why it last went).") { name };
        describe.SetAction((r, ct) => RunAsync(r, async api =>
        {
            var path = "/things/" + ApiClient.Segment(r.GetValue(name)!);
            var thing = await api.SendAsync(HttpMethod.Get, path, null, null, ct);
            if (!thing.Ok || thing.Body is not JsonObject described)
            {
                return thing;
            }

            var connectivity = await api.SendAsync(HttpMethod.Post, path + "/connectivity-data", null, null, ct);
            if (connectivity.Ok && connectivity.Body is { } state)
            {
                described["connected"] = state["connected"]?.DeepClone();
                described["connectivityTimestamp"] = state["timestamp"]?.DeepClone();
                described["disconnectReason"] = state["disconnectReason"]?.DeepClone();
            }

            return thing;
        }, Fields));

        var delete = new Command("delete", "Delete a thing.") { name };
        delete.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Delete, "/things/" + ApiClient.Segment(r.GetValue(name)!), null, null, ct), _ => AnsiConsole.MarkupLine("[green]deleted[/]")));

        return new Command("things", "Things in the registry.") { list, create, describe, delete };
    }

    private static Command Types()
    {
        var name = new Argument<string>("name") { Description = "Thing type name" };
        var description = new Option<string?>("--description") { Description = "What things of this type are" };
        var undo = new Option<bool>("--undo") { Description = "Undo a deprecation" };

        var list = new Command("list", "List thing types.");
        list.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/thing-types", null, null, ct),
            body => Table(new JsonArray([.. body["thingTypes"]!.AsArray().Select(t => (JsonNode?)new JsonObject
            {
                ["thingTypeName"] = t!["thingTypeName"]?.DeepClone(),
                ["deprecated"] = t["thingTypeMetadata"]?["deprecated"]?.DeepClone(),
                ["description"] = t["thingTypeProperties"]?["thingTypeDescription"]?.DeepClone(),
            })]), "thingTypeName", "deprecated", "description")));

        var create = new Command("create", "Create a thing type.") { name, description };
        create.SetAction((r, ct) =>
        {
            var body = new JsonObject();
            if (r.GetValue(description) is { } text)
            {
                body["thingTypeProperties"] = new JsonObject { ["thingTypeDescription"] = text };
            }

            return RunAsync(r, api => api.SendAsync(HttpMethod.Post, "/thing-types/" + ApiClient.Segment(r.GetValue(name)!), null, body, ct), Fields);
        });

        var deprecate = new Command("deprecate", "Deprecate a thing type (no new things may use it), or undo that.") { name, undo };
        deprecate.SetAction((r, ct) => RunAsync(r,
            api => api.SendAsync(HttpMethod.Post, $"/thing-types/{ApiClient.Segment(r.GetValue(name)!)}/deprecate", null, new JsonObject { ["undoDeprecate"] = r.GetValue(undo) }, ct),
            _ => AnsiConsole.MarkupLine(r.GetValue(undo) ? "[green]in use again[/]" : "[green]deprecated[/]")));

        var delete = new Command("delete", "Delete a deprecated thing type that no thing uses.") { name };
        delete.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Delete, "/thing-types/" + ApiClient.Segment(r.GetValue(name)!), null, null, ct), _ => AnsiConsole.MarkupLine("[green]deleted[/]")));

        return new Command("types", "Thing types.") { list, create, deprecate, delete };
    }

    private static Command Certificates()
    {
        var id = new Argument<string>("certificate-id") { Description = "Certificate id (64 hex characters)" };

        var list = new Command("list", "List certificates.");
        list.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/certificates", null, null, ct), body => Table(body["certificates"], "certificateId", "status")));

        var describe = new Command("describe", "Show a certificate.") { id };
        describe.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/certificates/" + ApiClient.Segment(r.GetValue(id)!), null, null, ct),
            body => Fields(body["certificateDescription"] ?? body)));

        var pem = new Argument<FileInfo>("certificate") { Description = "Device certificate (PEM file)" };
        var withoutCa = new Option<bool>("--without-ca") { Description = "Register a certificate whose CA is not registered (self-signed included; admin keys only)" };
        var active = new Option<bool>("--active") { Description = "Register it ACTIVE (default INACTIVE)" };
        var register = new Command("register", "Register a device certificate made elsewhere (signed by a registered CA, or --without-ca).") { pem, withoutCa, active };
        register.SetAction(async (r, ct) =>
        {
            if (await ReadFileAsync(r.GetValue(pem)!, ct) is not { } certificatePem)
            {
                return Usage($"{r.GetValue(pem)!.FullName} does not exist");
            }

            var body = new JsonObject { ["certificatePem"] = certificatePem, ["status"] = r.GetValue(active) ? "ACTIVE" : "INACTIVE" };
            return await RunAsync(r, api => api.SendAsync(HttpMethod.Post, r.GetValue(withoutCa) ? "/certificate/register-no-ca" : "/certificate/register", null, body, ct), Fields);
        });

        var force = new Option<bool>("--force") { Description = "Delete it even with policies attached (AWS's forceDelete)" };
        var delete = new Command("delete", "Delete a certificate that is not ACTIVE and attached to no thing.") { id, force };
        delete.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Delete, "/certificates/" + ApiClient.Segment(r.GetValue(id)!), r.GetValue(force) ? "forceDelete=true" : null, null, ct),
            _ => AnsiConsole.MarkupLine("[green]deleted[/]")));

        var commands = new List<Command> { list, describe, register, delete };
        foreach (var (verb, status, help) in new[] { ("activate", "ACTIVE", "Activate a certificate."), ("deactivate", "INACTIVE", "Deactivate a certificate; its connections are dropped."), ("revoke", "REVOKED", "Revoke a certificate for good; its connections are dropped.") })
        {
            var command = new Command(verb, help) { id };
            command.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Put, "/certificates/" + ApiClient.Segment(r.GetValue(id)!), "newStatus=" + status, null, ct),
                _ => AnsiConsole.MarkupLine($"[green]{status}[/]")));
            commands.Add(command);
        }

        return Group("certs", "Device certificates.", commands);
    }

    private static Command Policies()
    {
        var name = new Argument<string>("name") { Description = "Policy name" };
        var file = new Argument<FileInfo>("document") { Description = "Policy document (JSON file)" };
        var target = new Argument<string>("target") { Description = "Certificate, thing group or device token ARN" };

        var list = new Command("list", "List policies.");
        list.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/policies", null, null, ct), body => Table(body["policies"], "policyName", "policyArn")));

        var get = new Command("get", "Show a policy and its document.") { name };
        get.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/policies/" + ApiClient.Segment(r.GetValue(name)!), null, null, ct), Fields));

        var create = new Command("create", "Create a policy from a JSON document file.") { name, file };
        create.SetAction(async (r, ct) =>
        {
            var path = r.GetValue(file)!;
            if (!path.Exists)
            {
                return Usage($"{path.FullName} does not exist");
            }

            var document = await File.ReadAllTextAsync(path.FullName, ct);
            return await RunAsync(r, api => api.SendAsync(HttpMethod.Post, "/policies/" + ApiClient.Segment(r.GetValue(name)!), null, new JsonObject { ["policyDocument"] = document }, ct), Fields);
        });

        var attach = new Command("attach", "Attach a policy to a certificate, thing group or device token.") { name, target };
        attach.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Put, "/target-policies/" + ApiClient.Segment(r.GetValue(name)!), null, new JsonObject { ["target"] = r.GetValue(target) }, ct),
            _ => AnsiConsole.MarkupLine("[green]attached[/]")));

        var detach = new Command("detach", "Detach a policy; live connections lose it at once.") { name, target };
        detach.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Post, "/target-policies/" + ApiClient.Segment(r.GetValue(name)!), null, new JsonObject { ["target"] = r.GetValue(target) }, ct),
            _ => AnsiConsole.MarkupLine("[green]detached[/]")));

        return new Command("policies", "Policies.") { list, get, create, attach, detach };
    }

    private static Command Groups()
    {
        var name = new Argument<string>("name") { Description = "Thing group name" };
        var thing = new Argument<string>("thing") { Description = "Thing name" };
        var parent = new Option<string?>("--parent") { Description = "Parent group" };

        var list = new Command("list", "List thing groups.");
        list.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/thing-groups", null, null, ct), body => Table(body["thingGroups"], "groupName", "groupArn")));

        var query = new Option<string>("--query") { Description = "Fleet-index query whose matches are the members (docs/monitoring.md)", Required = true };
        var createDynamic = new Command("create-dynamic", "Create a dynamic thing group: its members are the things the query matches, as they change (fleet indexing must be on).") { name, query };
        createDynamic.SetAction((r, ct) => RunAsync(r,
            api => api.SendAsync(HttpMethod.Post, "/dynamic-thing-groups/" + ApiClient.Segment(r.GetValue(name)!), null, new JsonObject { ["queryString"] = r.GetValue(query) }, ct), Fields));

        var create = new Command("create", "Create a thing group.") { name, parent };
        create.SetAction((r, ct) =>
        {
            var body = new JsonObject();
            if (r.GetValue(parent) is { } p)
            {
                body["parentGroupName"] = p;
            }

            return RunAsync(r, api => api.SendAsync(HttpMethod.Post, "/thing-groups/" + ApiClient.Segment(r.GetValue(name)!), null, body, ct), Fields);
        });

        var add = new Command("add-thing", "Put a thing in a group (the group's policies then apply to it).") { name, thing };
        add.SetAction((r, ct) => RunAsync(r,
            api => api.SendAsync(HttpMethod.Put, "/thing-groups/addThingToThingGroup", null, new JsonObject { ["thingGroupName"] = r.GetValue(name), ["thingName"] = r.GetValue(thing) }, ct),
            _ => AnsiConsole.MarkupLine("[green]added[/]")));

        var remove = new Command("remove-thing", "Take a thing out of a group (it loses the group's policies at once).") { name, thing };
        remove.SetAction((r, ct) => RunAsync(r,
            api => api.SendAsync(HttpMethod.Put, "/thing-groups/removeThingFromThingGroup", null, new JsonObject { ["thingGroupName"] = r.GetValue(name), ["thingName"] = r.GetValue(thing) }, ct),
            _ => AnsiConsole.MarkupLine("[green]removed[/]")));

        var describe = new Command("describe", "Show a thing group, with its parents.") { name };
        describe.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/thing-groups/" + ApiClient.Segment(r.GetValue(name)!), null, null, ct), Fields));

        var recursive = new Option<bool>("--recursive") { Description = "Include the things of child groups" };
        var things = new Command("things", "List the things in a group.") { name, recursive };
        things.SetAction((r, ct) => RunAsync(r,
            api => api.SendAsync(HttpMethod.Get, $"/thing-groups/{ApiClient.Segment(r.GetValue(name)!)}/things", r.GetValue(recursive) ? "recursive=true" : null, null, ct),
            body => Console.WriteLine(string.Join(Environment.NewLine, body["things"]?.AsArray().Select(t => t?.GetValue<string>()) ?? []))));

        var delete = new Command("delete", "Delete a thing group (not while it has child groups).") { name };
        delete.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Delete, "/thing-groups/" + ApiClient.Segment(r.GetValue(name)!), null, null, ct),
            _ => AnsiConsole.MarkupLine("[green]deleted[/]")));

        return new Command("groups", "Thing groups, static and dynamic.") { list, create, createDynamic, describe, things, add, remove, delete };
    }

    private static Command Tokens()
    {
        var thing = new Argument<string>("thing") { Description = "Thing name" };
        var id = new Argument<string>("token-id") { Description = "Token id" };
        var expires = new Option<long?>("--expires-in") { Description = "Seconds until the token expires (default: never)" };
        var description = new Option<string?>("--description") { Description = "What the token is for" };
        var psk = new Option<bool>("--dtls-psk") { Description = "Also make the token the thing's DTLS pre-shared key on CoAP (identity = thing name); kept sealed, not only hashed" };

        var create = new Command("create", "Create a device token for a thing; it is shown once.") { thing, expires, description, psk };
        create.SetAction((r, ct) =>
        {
            var body = new JsonObject();
            if (r.GetValue(expires) is { } seconds)
            {
                body["expiresInSeconds"] = seconds;
            }

            if (r.GetValue(description) is { } text)
            {
                body["description"] = text;
            }

            if (r.GetValue(psk))
            {
                body["dtlsPsk"] = true;
            }

            return RunAsync(r, api => api.SendAsync(HttpMethod.Post, $"/api/things/{ApiClient.Segment(r.GetValue(thing)!)}/tokens", null, body, ct), body =>
            {
                Fields(body);
                AnsiConsole.MarkupLine("[yellow]Store the token now: it is not shown again.[/]");
            });
        });

        var list = new Command("list", "List a thing's tokens (never the secrets).") { thing };
        list.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, $"/api/things/{ApiClient.Segment(r.GetValue(thing)!)}/tokens", null, null, ct),
            body => Table(body["tokens"], "tokenId", "status", "description")));

        var revoke = new Command("revoke", "Revoke a token; its connections are dropped.") { id };
        revoke.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Delete, "/api/tokens/" + ApiClient.Segment(r.GetValue(id)!), null, null, ct), _ => AnsiConsole.MarkupLine("[green]revoked[/]")));

        return new Command("tokens", "Device tokens for constrained devices (user name = thing name, password = token).") { create, list, revoke };
    }

    private static Command Audit()
    {
        var operation = new Option<string?>("--operation") { Description = "Only this operation, e.g. AttachPolicy" };
        var target = new Option<string?>("--target") { Description = "Only targets containing this text" };
        var since = new Option<string?>("--since") { Description = "From this time (ISO 8601)" };
        var failed = new Option<bool>("--failed") { Description = "Only calls that failed" };
        var max = new Option<int?>("--max") { Description = "At most this many (the newest)" };
        var audit = new Command("audit", "Who changed what: the audit log of management calls, newest first.") { operation, target, since, failed, max };
        audit.SetAction((r, ct) => RunAsync(r,
            api => api.SendAsync(HttpMethod.Get, "/api/audit", Query(("operation", r.GetValue(operation)), ("target", r.GetValue(target)), ("since", r.GetValue(since)),
                ("failed", r.GetValue(failed) ? "true" : null), ("maxResults", r.GetValue(max)?.ToString(System.Globalization.CultureInfo.InvariantCulture)), ("order", "newest")), null, ct),
            body => Table(body["events"], "time", "accessKeyId", "operation", "target", "status", "errorType")));
        return audit;
    }

    /// <summary>Several API calls in one command (provisioning): the steps return the answer to print, or the first failure.</summary>
    public static Task<int> RunStepsAsync(ParseResult parse, Func<ApiClient, Task<ApiAnswer>> steps) => RunAsync(parse, steps, Fields);

    /// <summary>Resolves credentials, calls the API, prints the answer; returns the exit code.</summary>
    private static async Task<int> RunAsync(ParseResult parse, Func<ApiClient, Task<ApiAnswer>> call, Action<JsonNode> print, bool printsCsv = false)
    {
        if (!Uri.TryCreate(parse.GetValue(Endpoint), UriKind.Absolute, out var endpoint))
        {
            return Usage($"--endpoint must be a URL such as http://127.0.0.1:8080, not '{parse.GetValue(Endpoint)}'");
        }

        if (CliCredentials.Resolve(parse.GetValue(Data)!, parse.GetValue(Profile), out var tried) is not { } credentials)
        {
            await Console.Error.WriteLineAsync($"trellis: no credentials found ({tried}). Point --data at the server's data folder, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.");
            return 3;
        }

        // Over HTTPS the server may chain to the data folder's CA or to AWS_CA_BUNDLE (as the AWS CLI and boto3 read it).
        List<string> caBundles = [Path.Combine(parse.GetValue(Data)!, "ca.pem")];
        if (Environment.GetEnvironmentVariable("AWS_CA_BUNDLE") is { Length: > 0 } bundle)
        {
            caBundles.Add(bundle);
        }

        using var api = new ApiClient(endpoint, credentials.AccessKeyId, credentials.Secret, caBundles);
        ApiAnswer answer;
        try
        {
            answer = await call(api);
        }
        catch (HttpRequestException e) when (e.HttpRequestError == HttpRequestError.SecureConnectionError)
        {
            await Console.Error.WriteLineAsync($"trellis: {endpoint}'s TLS certificate is not trusted ({e.InnerException?.Message ?? e.Message}). Trellis's server certificate chains to the data folder's ca.pem: point --data at that folder, or set AWS_CA_BUNDLE to the CA file.");
            return 3;
        }
        catch (Exception e) when (e is HttpRequestException or SocketException or TaskCanceledException)
        {
            await Console.Error.WriteLineAsync($"trellis: cannot reach {endpoint}: {e.Message}. Is `trellis serve` running there?");
            return 3;
        }

        if (!answer.Ok)
        {
            await Console.Error.WriteLineAsync($"trellis: {answer.ErrorType}: {answer.Message ?? "(no message)"}");
            return 1;
        }

        var body = answer.Body ?? new JsonObject();
        if (parse.GetValue(Output) == "json" && body["file"] is null)
        {
            Console.WriteLine(body.ToJsonString(JsonOutput));
        }
        else if (parse.GetValue(Output) == "csv" && body["file"] is null && !printsCsv)
        {
            Csv(body);
        }
        else
        {
            if (Console.IsOutputRedirected)
            {
                AnsiConsole.Profile.Width = 4096; // a pipe or a file: never wrap an ARN or an id
            }

            print(body);
        }

        return 0;
    }

    /// <summary>A command such as <c>trellis rules</c> whose subcommands do the work.</summary>
    private static Command Group(string name, string description, IEnumerable<Command> commands)
    {
        var group = new Command(name, description);
        foreach (var command in commands)
        {
            group.Subcommands.Add(command);
        }

        return group;
    }

    private static int Usage(string message)
    {
        Console.Error.WriteLine("trellis: " + message);
        return 2;
    }

    private static string? Query(params (string Name, string? Value)[] parts)
    {
        var given = parts.Where(p => p.Value is not null).Select(p => $"{Uri.EscapeDataString(p.Name)}={Uri.EscapeDataString(p.Value!)}").ToList();
        return given.Count == 0 ? null : string.Join('&', given);
    }

    /// <summary>A list as a table with the given columns.</summary>
    private static void Table(JsonNode? items, params string[] columns)
    {
        var table = new Table().Border(TableBorder.Rounded);
        foreach (var column in columns)
        {
            table.AddColumn(column);
        }

        foreach (var item in items?.AsArray() ?? [])
        {
            table.AddRow(columns.Select(c => Markup.Escape(Cell(c, item?[c]))).ToArray());
        }

        AnsiConsole.Write(table);
    }

    /// <summary>One object as field / value rows.</summary>
    /// <summary>The object without its null members (AWS's models take an absent member, not a null one).</summary>
    private static JsonObject WithoutNulls(JsonObject body)
    {
        foreach (var key in body.Where(p => p.Value is null).Select(p => p.Key).ToList())
        {
            body.Remove(key);
        }

        return body;
    }

    private static void Fields(JsonNode body)
    {
        var table = new Table().Border(TableBorder.Rounded).AddColumn("field").AddColumn("value");
        var secrets = new List<(string Key, string Value)>();
        foreach (var (key, value) in body.AsObject())
        {
            if (Secret(key, value))
            {
                secrets.Add((key, Text(value)));
                continue;
            }

            table.AddRow(Markup.Escape(key), Markup.Escape(Cell(key, value)));
        }

        AnsiConsole.Write(table);

        // One-time secrets and key material on lines of their own, never wrapped inside a table.
        foreach (var (key, value) in secrets)
        {
            Console.WriteLine($"{key} (shown once, copy it whole):");
            Console.WriteLine(value);
        }
    }

    /// <summary>Members that must be copied whole: one-time secrets, tokens and PEM blocks.</summary>
    private static bool Secret(string key, JsonNode? value) =>
        key is "secretAccessKey" or "token" or "certificateOwnershipToken" or "privateKey" or "PrivateKey" or "keyPair" or "password"
        || (value is JsonValue v && v.TryGetValue<string>(out var s) && s.StartsWith("-----BEGIN ", StringComparison.Ordinal));

    /// <summary>What --output json prints: indented, with ' + &lt; &gt; &amp; and non-ASCII text as they are.</summary>
    private static readonly JsonSerializerOptions JsonOutput = new() { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static readonly JsonSerializerOptions JsonCompact = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>
    /// --output csv (RFC 4180): a list (the answer's one array of objects) as a header and a row per
    /// item with every member any item has; a single object as field,value rows.
    /// </summary>
    private static void Csv(JsonNode body)
    {
        static string Cell(string text) => text.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + text.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : text;
        var lists = body is JsonObject o ? o.Where(p => p.Value is JsonArray).ToList() : [];
        if (lists.Count == 1 && lists[0].Value!.AsArray().All(i => i is JsonObject))
        {
            var items = lists[0].Value!.AsArray();
            var columns = items.SelectMany(i => i!.AsObject().Select(p => p.Key)).Distinct().ToList();
            Console.WriteLine(string.Join(',', columns.Select(Cell)));
            foreach (var item in items)
            {
                Console.WriteLine(string.Join(',', columns.Select(c => Cell(Text(item![c])))));
            }

            return;
        }

        Console.WriteLine("field,value");
        foreach (var (key, value) in body.AsObject())
        {
            Console.WriteLine(Cell(key) + "," + Cell(Text(value)));
        }
    }

    /// <summary>
    /// A table cell: AWS's timestamps (epoch seconds in members such as <c>creationDate</c>,
    /// <c>lastModifiedDate</c>, <c>nextAttempt</c>) as ISO 8601 UTC for people; JSON and CSV keep the API's numbers.
    /// </summary>
    private static string Cell(string key, JsonNode? node) =>
        node is JsonValue v && v.TryGetValue<double>(out var seconds) && seconds > 1e9 && seconds < 1e11
            && (key.EndsWith("Date", StringComparison.Ordinal) || key is "timestamp" or "lastFailure" or "nextAttempt" or "expiration")
            ? DateTimeOffset.FromUnixTimeMilliseconds((long)(seconds * 1000)).UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture)
            : Text(node);

    private static string Text(JsonNode? node) => node switch
    {
        null => string.Empty,
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        _ => node.ToJsonString(JsonCompact),
    };
}
