using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace Trellis.Cli;

/// <summary>
/// <c>trellis provision --thing NAME --out DIR</c>: a ready device folder. Creates the thing, an
/// active certificate and key, attaches a policy (the given one, or a per-thing default that
/// allows the device its own <c>devices/{thing}/…</c> topics, its shadow, jobs and streams), and writes the
/// certificate, the key (mode 0600), the server's CA, <c>device.json</c> (the thing's name and the
/// endpoint) and a sample mosquitto command.
/// </summary>
internal static class ProvisionCommand
{
    public const string DefaultPolicyName = Trellis.Registry.DefaultDevicePolicy.Name;

    private const string DefaultPolicy = Trellis.Registry.DefaultDevicePolicy.Document;

    public static Command Create()
    {
        var thing = new Option<string>("--thing") { Description = "Thing name (created if it does not exist)", Required = true };
        var output = new Option<string>("--out") { Description = "Folder to write the device files to", Required = true };
        var policy = new Option<string?>("--policy") { Description = $"Policy to attach (default: {DefaultPolicyName}, created on first use)" };
        var force = new Option<bool>("--force") { Description = "Replace the identity a folder already holds (a new key and certificate; the old certificate stays until you deactivate it)" };
        var command = new Command("provision", "Create a thing with its certificate and policy, and write a ready device folder.") { thing, output, policy, force };
        command.SetAction((parse, ct) => ManageCommands.RunStepsAsync(parse, api =>
            ProvisionOneAsync(api, parse.GetValue(thing)!, parse.GetValue(policy), Path.GetFullPath(parse.GetValue(output)!), parse.GetValue(ManageCommands.DataOption)!, ct, parse.GetValue(force))));
        command.Subcommands.Add(Bulk());
        return command;
    }

    /// <summary>Provisions one device into <paramref name="folder"/>; returns the summary, or the first API failure.</summary>
    internal static async Task<ApiAnswer> ProvisionOneAsync(ApiClient api, string name, string? policy, string folder, string dataDirectory, CancellationToken ct, bool force = true)
    {
        // A folder that already holds an identity keeps it unless told otherwise: replacing the key
        // silently would leave a second active certificate behind and break the device.
        if (!force && (File.Exists(Path.Combine(folder, "device.json")) || Directory.Exists(folder) && Directory.EnumerateFiles(folder, "*.private.key").Any()))
        {
            return new ApiAnswer(409, null, "ResourceAlreadyExistsException",
                $"{folder} already holds a device identity (device.json, a private key): give another --out, or --force to make a new key and certificate there (then deactivate the old certificate with trellis certs deactivate ID)");
        }

        // The policy must exist before anything is made, so a typo leaves nothing behind.
        if (policy is not null)
        {
            var found = await api.SendAsync(HttpMethod.Get, "/policies/" + ApiClient.Segment(policy), null, null, ct);
            if (!found.Ok)
            {
                return found.ErrorType == "ResourceNotFoundException"
                    ? new ApiAnswer(404, null, "ResourceNotFoundException", $"policy {policy} does not exist: create it first (trellis policies create {policy} FILE), or leave --policy out for the default device policy; nothing was created")
                    : found;
            }
        }

        var thingCreated = !(await api.SendAsync(HttpMethod.Get, "/things/" + ApiClient.Segment(name), null, null, ct)).Ok;
        var thingAnswer = await api.SendAsync(HttpMethod.Post, "/things/" + ApiClient.Segment(name), null, new JsonObject(), ct);
        if (!thingAnswer.Ok && thingAnswer.ErrorType != "ResourceAlreadyExistsException")
        {
            return thingAnswer;
        }

        var policyName = policy ?? DefaultPolicyName;
        if (policy is null)
        {
            var created = await api.SendAsync(HttpMethod.Post, "/policies/" + ApiClient.Segment(policyName), null, new JsonObject { ["policyDocument"] = DefaultPolicy }, ct);
            if (!created.Ok && created.ErrorType != "ResourceAlreadyExistsException")
            {
                return created;
            }
        }

        var certificate = await api.SendAsync(HttpMethod.Post, "/keys-and-certificate", "setAsActive=true", new JsonObject(), ct);
        if (!certificate.Ok)
        {
            return certificate;
        }

        var arn = certificate.Body!["certificateArn"]!.GetValue<string>();
        var certificateId = certificate.Body["certificateId"]!.GetValue<string>();
        var attach = await api.SendAsync(HttpMethod.Put, "/target-policies/" + ApiClient.Segment(policyName), null, new JsonObject { ["target"] = arn }, ct);
        var principal = attach.Ok
            ? await api.SendAsync(HttpMethod.Put, $"/things/{ApiClient.Segment(name)}/principals", null, null, new Dictionary<string, string> { ["x-amzn-principal"] = arn }, ct)
            : attach;
        if (!principal.Ok)
        {
            // Undo what this run made: the certificate (its key is not kept anywhere) and a new thing.
            await api.SendAsync(HttpMethod.Put, "/certificates/" + ApiClient.Segment(certificateId), "newStatus=INACTIVE", null, ct);
            await api.SendAsync(HttpMethod.Delete, "/certificates/" + ApiClient.Segment(certificateId), "forceDelete=true", null, ct);
            if (thingCreated)
            {
                await api.SendAsync(HttpMethod.Delete, "/things/" + ApiClient.Segment(name), null, null, ct);
            }

            return principal with { Message = principal.Message + " (nothing was left behind: the new certificate" + (thingCreated ? " and thing were" : " was") + " deleted again)" };
        }

        var endpoint = await api.SendAsync(HttpMethod.Get, "/endpoint", "endpointType=iot%3AData-ATS", null, ct);
        var address = endpoint.Body?["endpointAddress"]?.GetValue<string>() ?? "localhost";
        var (host, port) = Trellis.Registry.DeviceFolderFiles.Endpoint(address);

        Directory.CreateDirectory(folder);
        var certPath = Path.Combine(folder, name + ".cert.pem");
        var keyPath = Path.Combine(folder, name + ".private.key");
        await File.WriteAllTextAsync(certPath, certificate.Body["certificatePem"]!.GetValue<string>(), ct);
        Trellis.Device.IdentityFiles.WritePrivate(keyPath, certificate.Body["keyPair"]!["PrivateKey"]!.GetValue<string>());

        var caSource = Path.Combine(dataDirectory, "ca.pem");
        var caPath = Path.Combine(folder, "ca.pem");
        var haveCa = File.Exists(caSource);
        if (haveCa)
        {
            File.Copy(caSource, caPath, overwrite: true);
        }

        await File.WriteAllTextAsync(Path.Combine(folder, "connect.sh"), Trellis.Registry.DeviceFolderFiles.ConnectScript(name, host, port), ct);
        await File.WriteAllTextAsync(Path.Combine(folder, "device.json"), Trellis.Registry.DeviceFolderFiles.DeviceJson(name, host, port), ct);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(Path.Combine(folder, "connect.sh"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }

        var summary = new JsonObject
        {
            ["thingName"] = name,
            ["certificateArn"] = arn,
            ["policyName"] = policyName,
            ["folder"] = folder,
            ["endpoint"] = $"{host}:{port}",
        };
        if (!haveCa)
        {
            summary["warning"] = $"no ca.pem in {dataDirectory}: copy the server's data/ca.pem into {folder}";
        }

        return new ApiAnswer(200, summary, null, null);
    }

    /// <summary>
    /// <c>trellis provision bulk --csv FILE --out DIR</c>: one device folder per CSV row (first
    /// column the thing name, optional second column a policy). Finished devices are listed in
    /// <c>DIR/.provisioned</c>, so a second run after an interruption skips them and makes no
    /// duplicates.
    /// </summary>
    private static Command Bulk()
    {
        var csv = new Option<FileInfo>("--csv") { Description = "CSV file: thingName[,policyName] per line (a header line 'thingName' and # comments are skipped)", Required = true };
        var output = new Option<string>("--out") { Description = "Folder for the device folders (one per thing)", Required = true };
        var policy = new Option<string?>("--policy") { Description = $"Policy for rows without one (default: {DefaultPolicyName})" };
        var command = new Command("bulk", "Provision many devices from a CSV file, with a progress bar; resumable.") { csv, output, policy };
        command.SetAction(async (parse, ct) =>
        {
            var file = parse.GetValue(csv)!;
            if (!file.Exists)
            {
                await Console.Error.WriteLineAsync($"trellis: {file.FullName} does not exist");
                return 2;
            }

            var rows = (await File.ReadAllLinesAsync(file.FullName, ct))
                .Select(l => l.Trim())
                .Where(l => l.Length > 0 && !l.StartsWith('#') && !l.StartsWith("thingName", StringComparison.OrdinalIgnoreCase))
                .Select(l => l.Split(',', StringSplitOptions.TrimEntries))
                .Select(c => (Thing: c[0], Policy: c.Length > 1 && c[1].Length > 0 ? c[1] : parse.GetValue(policy)))
                .ToList();
            var root = Path.GetFullPath(parse.GetValue(output)!);
            Directory.CreateDirectory(root);
            var journal = Path.Combine(root, ".provisioned");
            var done = File.Exists(journal) ? new HashSet<string>(await File.ReadAllLinesAsync(journal, ct), StringComparer.Ordinal) : new HashSet<string>(StringComparer.Ordinal);
            // A live bar on a terminal only; in a pipe or a log, a plain line at every tenth and at the end
            // (Spectre's bar without a terminal stops drawing before it is full).
            var interactive = parse.GetValue(ManageCommands.OutputOption) == "table" && !Console.IsOutputRedirected && !Console.IsErrorRedirected;
            return await ManageCommands.RunStepsAsync(parse, async api =>
            {
                var (provisioned, skipped) = (0, 0);
                ApiAnswer? failure = null;
                async Task RunAsync(Action<int>? advance)
                {
                    foreach (var (thing, rowPolicy) in rows)
                    {
                        if (done.Contains(thing))
                        {
                            skipped++;
                            advance?.Invoke(1);
                            continue;
                        }

                        var answer = await ProvisionOneAsync(api, thing, rowPolicy, Path.Combine(root, thing), parse.GetValue(ManageCommands.DataOption)!, ct);
                        if (!answer.Ok)
                        {
                            failure = answer with { Message = $"{thing}: {answer.Message} (the {provisioned + skipped} devices before it are done; run the same command again to resume)" };
                            return;
                        }

                        await File.AppendAllTextAsync(journal, thing + "\n", ct);
                        done.Add(thing);
                        provisioned++;
                        advance?.Invoke(1);
                    }
                }

                if (interactive)
                {
                    await AnsiConsole.Progress().StartAsync(async context =>
                    {
                        var task = context.AddTask($"provisioning {rows.Count} devices", maxValue: rows.Count);
                        await RunAsync(n => task.Increment(n));
                    });
                }
                else
                {
                    var (count, step) = (0, Math.Max(1, rows.Count / 10));
                    await RunAsync(n =>
                    {
                        count += n;
                        if (count % step == 0 || count == rows.Count)
                        {
                            Console.Error.WriteLine($"trellis provision bulk: {count} of {rows.Count} devices ({100 * count / Math.Max(1, rows.Count)} %)");
                        }
                    });
                }

                return failure ?? new ApiAnswer(200, new JsonObject { ["provisioned"] = provisioned, ["skipped"] = skipped, ["folder"] = root }, null, null);
            });
        });
        return command;
    }
}
