using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace Trellis.Cli;

/// <summary><c>trellis templates …</c> (provisioning templates) and <c>trellis cas …</c> (your own CAs).</summary>
internal static partial class ManageCommands
{
    private static Command Templates()
    {
        var name = new Argument<string>("name") { Description = "Template name" };
        var file = new Argument<FileInfo>("body") { Description = "Template body (JSON file)" };
        var type = new Option<string>("--type") { Description = "FLEET_PROVISIONING (devices register by claim) or JITP (a CA's first-connect template)", DefaultValueFactory = _ => "FLEET_PROVISIONING" };
        type.AcceptOnlyFromAmong("FLEET_PROVISIONING", "JITP");
        var description = new Option<string?>("--description") { Description = "What the template is for" };
        var hook = new Option<string?>("--hook") { Description = "Pre-provisioning webhook URL: answers {\"allowProvisioning\": true|false, \"parameterOverrides\": {…}}" };
        var role = new Option<string>("--role-arn") { Description = "Provisioning role ARN (kept for AWS compatibility)", DefaultValueFactory = _ => "arn:aws:iam::000000000000:role/trellis-provisioning" };
        var disabled = new Option<bool>("--disabled") { Description = "Create it disabled" };
        var setDefault = new Option<bool>("--set-default") { Description = "Make the new version the default" };

        var list = new Command("list", "List provisioning templates.");
        list.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/provisioning-templates", null, null, ct),
            body => Table(body["templates"], "templateName", "type", "enabled", "description")));

        var describe = new Command("describe", "Show a template and its default version's body.") { name };
        describe.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/provisioning-templates/" + ApiClient.Segment(r.GetValue(name)!), null, null, ct), Fields));

        var create = new Command("create", "Create a template from a JSON body file (the server checks it and says where a mistake is).") { name, file, type, description, hook, role, disabled };
        create.SetAction(async (r, ct) =>
        {
            if (await ReadFileAsync(r.GetValue(file)!, ct) is not { } templateBody)
            {
                return Usage($"{r.GetValue(file)!.FullName} does not exist");
            }

            var request = new JsonObject
            {
                ["templateName"] = r.GetValue(name),
                ["templateBody"] = templateBody,
                ["type"] = r.GetValue(type),
                ["enabled"] = !r.GetValue(disabled),
                ["provisioningRoleArn"] = r.GetValue(role),
            };
            if (r.GetValue(description) is { } text)
            {
                request["description"] = text;
            }

            if (r.GetValue(hook) is { } url)
            {
                request["preProvisioningHook"] = new JsonObject { ["targetArn"] = url, ["payloadVersion"] = "2020-04-01" };
            }

            return await RunAsync(r, api => api.SendAsync(HttpMethod.Post, "/provisioning-templates", null, request, ct), Fields);
        });

        var version = new Command("new-version", "Add a version of a template's body (at most 5 are kept).") { name, file, setDefault };
        version.SetAction(async (r, ct) =>
        {
            if (await ReadFileAsync(r.GetValue(file)!, ct) is not { } templateBody)
            {
                return Usage($"{r.GetValue(file)!.FullName} does not exist");
            }

            return await RunAsync(r, api => api.SendAsync(HttpMethod.Post, $"/provisioning-templates/{ApiClient.Segment(r.GetValue(name)!)}/versions",
                r.GetValue(setDefault) ? "setAsDefault=true" : null, new JsonObject { ["templateBody"] = templateBody }, ct), Fields);
        });

        var versions = new Command("versions", "List a template's versions.") { name };
        versions.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, $"/provisioning-templates/{ApiClient.Segment(r.GetValue(name)!)}/versions", null, null, ct),
            body => Table(body["versions"], "versionId", "isDefaultVersion", "creationDate")));

        var commands = new List<Command> { list, describe, create, version, versions };
        foreach (var (verb, enabled, help) in new[] { ("enable", true, "Let devices register through a template."), ("disable", false, "Stop devices registering through a template.") })
        {
            var command = new Command(verb, help) { name };
            command.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Patch, "/provisioning-templates/" + ApiClient.Segment(r.GetValue(name)!), null, new JsonObject { ["enabled"] = enabled }, ct),
                _ => AnsiConsole.MarkupLine($"[green]{verb}d[/]")));
            commands.Add(command);
        }

        var delete = new Command("delete", "Delete a template (not while a CA uses it for JITP).") { name };
        delete.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Delete, "/provisioning-templates/" + ApiClient.Segment(r.GetValue(name)!), null, null, ct),
            _ => AnsiConsole.MarkupLine("[green]deleted[/]")));
        commands.Add(delete);

        return Group("templates", "Provisioning templates: fleet provisioning by claim and JITP.", commands);
    }

    private static Command CaCertificates()
    {
        var id = new Argument<string>("ca-certificate-id") { Description = "CA certificate id (64 hex characters)" };
        var caFile = new Argument<FileInfo>("ca-certificate") { Description = "The CA certificate (PEM file)" };
        var verificationFile = new Option<FileInfo?>("--verification") { Description = "A certificate signed by the CA whose CN is the registration code (see 'trellis cas code')" };
        var jitp = new Option<string?>("--jitp-template") { Description = "JITP template that provisions this CA's devices on first connect" };
        var inactive = new Option<bool>("--inactive") { Description = "Register it INACTIVE" };
        var noAuto = new Option<bool>("--no-auto-registration") { Description = "Do not register this CA's unknown device certificates on first connect" };

        var code = new Command("code", "The registration code: the CN of the verification certificate that proves you hold a CA's key.");
        code.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/registrationcode", null, null, ct),
            body => Console.WriteLine(body["registrationCode"]?.GetValue<string>())));

        var register = new Command("register", "Register your CA; devices with certificates it signed can then connect (admin keys only).") { caFile, verificationFile, jitp, inactive, noAuto };
        register.SetAction(async (r, ct) =>
        {
            if (await ReadFileAsync(r.GetValue(caFile)!, ct) is not { } caPem)
            {
                return Usage($"{r.GetValue(caFile)!.FullName} does not exist");
            }

            var request = new JsonObject { ["caCertificate"] = caPem };
            if (r.GetValue(verificationFile) is { } verification)
            {
                if (await ReadFileAsync(verification, ct) is not { } verificationPem)
                {
                    return Usage($"{verification.FullName} does not exist");
                }

                request["verificationCertificate"] = verificationPem;
            }

            if (r.GetValue(jitp) is { } template)
            {
                request["registrationConfig"] = new JsonObject { ["templateName"] = template };
            }

            var query = $"setAsActive={(!r.GetValue(inactive)).ToString().ToLowerInvariant()}&allowAutoRegistration={(!r.GetValue(noAuto)).ToString().ToLowerInvariant()}";
            return await RunAsync(r, api => api.SendAsync(HttpMethod.Post, "/cacertificate", query, request, ct), Fields);
        });

        var list = new Command("list", "List registered CAs.");
        list.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/cacertificates", null, null, ct), body => Table(body["certificates"], "certificateId", "status")));

        var describe = new Command("describe", "Show a registered CA.") { id };
        describe.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/cacertificate/" + ApiClient.Segment(r.GetValue(id)!), null, null, ct),
            body => Fields(body["certificateDescription"] ?? body)));

        var certificates = new Command("certs", "List the device certificates a CA issued that are registered.") { id };
        certificates.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/certificates-by-ca/" + ApiClient.Segment(r.GetValue(id)!), null, null, ct),
            body => Table(body["certificates"], "certificateId", "status")));

        var commands = new List<Command> { code, register, list, describe, certificates };
        foreach (var (verb, query, help) in new[]
        {
            ("activate", "newStatus=ACTIVE", "Trust a registered CA again."),
            ("deactivate", "newStatus=INACTIVE", "Stop trusting a CA: its unknown certificates are refused."),
            ("auto-on", "newAutoRegistrationStatus=ENABLE", "Register this CA's unknown certificates on first connect."),
            ("auto-off", "newAutoRegistrationStatus=DISABLE", "Refuse this CA's unknown certificates."),
        })
        {
            var command = new Command(verb, help) { id };
            command.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Put, "/cacertificate/" + ApiClient.Segment(r.GetValue(id)!), query, null, ct),
                _ => AnsiConsole.MarkupLine("[green]updated[/]")));
            commands.Add(command);
        }

        var delete = new Command("delete", "Delete an INACTIVE CA.") { id };
        delete.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Delete, "/cacertificate/" + ApiClient.Segment(r.GetValue(id)!), null, null, ct),
            _ => AnsiConsole.MarkupLine("[green]deleted[/]")));
        commands.Add(delete);

        return Group("cas", "Your own CAs (bring your own CA, JITP).", commands);
    }

    private static async Task<string?> ReadFileAsync(FileInfo file, CancellationToken cancellationToken) =>
        file.Exists ? await File.ReadAllTextAsync(file.FullName, cancellationToken) : null;
}
