using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;
using Trellis.Registry;

namespace Trellis.IntegrationTests.Api;

/// <summary>The <c>trellis</c> management commands as a real process, SigV4-signed with the data folder's credentials.</summary>
[Collection(TrellisServerGroup.Name)]
public sealed class CliManageTests(TrellisHost host)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Things_groups_tokens_and_audit_work_with_tables_json_and_exit_codes()
    {
        var thing = TrellisHost.Unique("cli");
        var group = TrellisHost.Unique("cligroup");

        var create = await TrellisCli.RunAsync(host, ["things", "create", thing, "--attribute", "site=lyon"], Ct);
        Assert.True(create.ExitCode == 0, create.Output);
        Assert.Contains(thing, create.Stdout, StringComparison.Ordinal);

        var describe = await TrellisCli.RunAsync(host, ["things", "describe", thing, "--output", "json"], Ct);
        Assert.Equal(0, describe.ExitCode);
        Assert.Equal("lyon", JsonNode.Parse(describe.Stdout)!["attributes"]!["site"]!.GetValue<string>());
        Assert.Equal((false, "NONE"), (JsonNode.Parse(describe.Stdout)!["connected"]!.GetValue<bool>(), JsonNode.Parse(describe.Stdout)!["disconnectReason"]!.GetValue<string>()));
        var fleet = await TrellisCli.RunAsync(host, ["fleet", "summary", "--output", "json"], Ct);
        Assert.True(fleet.ExitCode == 0, fleet.Output);
        Assert.True(JsonNode.Parse(fleet.Stdout)!["things"]!.GetValue<long>() >= 1);

        var missing = await TrellisCli.RunAsync(host, ["things", "describe", "no-such-thing"], Ct);
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("ResourceNotFoundException", missing.Stderr, StringComparison.Ordinal);

        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["groups", "create", group], Ct)).ExitCode);
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["groups", "add-thing", group, thing], Ct)).ExitCode);
        Assert.Contains(group, host.Server.Registry.ListThingGroupsForThing(thing, null, null).Value!.Items.Select(g => g.Name));
        Assert.Contains(thing, (await TrellisCli.RunAsync(host, ["groups", "things", group], Ct)).Stdout, StringComparison.Ordinal);
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["groups", "remove-thing", group, thing], Ct)).ExitCode);
        Assert.Empty(host.Server.Registry.ListThingGroupsForThing(thing, null, null).Value!.Items);

        var token = await TrellisCli.RunAsync(host, ["tokens", "create", thing, "--output", "json"], Ct);
        Assert.Equal(0, token.ExitCode);
        var secret = JsonNode.Parse(token.Stdout)!["token"]!.GetValue<string>();
        Assert.NotNull(host.Server.Registry.VerifyDeviceToken(thing, System.Text.Encoding.UTF8.GetBytes(secret)));

        var audit = await TrellisCli.RunAsync(host, ["audit", "--target", thing, "--output", "json"], Ct);
        Assert.Equal(0, audit.ExitCode);
        Assert.Contains("CreateThing", JsonNode.Parse(audit.Stdout)!["events"]!.AsArray().Select(e => e!["operation"]!.GetValue<string>()));

        var unreachable = await ExternalTool.RunAsync(TrellisCli.FileName, [.. TrellisCli.Leading, "things", "list", "--endpoint", "http://127.0.0.1:1", "--data", host.DataDirectory], TimeSpan.FromSeconds(60), cancellationToken: Ct);
        Assert.Equal(3, unreachable.ExitCode);
        Assert.Contains("cannot reach", unreachable.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Output_copies_whole_csv_and_json_say_what_the_api_said_and_usage_errors_exit_2()
    {
        var thing = TrellisHost.Unique("clicsv");
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["things", "create", thing], Ct)).ExitCode);

        // CSV: a header, then a row per thing.
        var csv = (await TrellisCli.RunAsync(host, ["things", "list", "--output", "csv"], Ct)).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("thingName,", csv[0], StringComparison.Ordinal);
        Assert.Contains(csv, l => l.StartsWith($"{thing},arn:aws:iot:", StringComparison.Ordinal));

        // A table in a pipe never wraps an ARN; a one-time secret stands on a line of its own.
        var described = await TrellisCli.RunAsync(host, ["things", "describe", thing], Ct);
        Assert.Contains($"arn:aws:iot:us-east-1:000000000000:thing/{thing}", described.Stdout, StringComparison.Ordinal);
        var lines = (await TrellisCli.RunAsync(host, ["tokens", "create", thing], Ct)).Stdout.Split('\n');
        var at = Array.FindIndex(lines, l => l.StartsWith("token (shown once", StringComparison.Ordinal));
        Assert.True(at >= 0, string.Join('\n', lines));
        Assert.NotNull(host.Server.Registry.VerifyDeviceToken(thing, System.Text.Encoding.UTF8.GetBytes(lines[at + 1].Trim())));

        // JSON as the API said it: quotes and plus signs are not escaped.
        var rule = TrellisHost.Unique("clijson_");
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["rules", "create", rule, "--sql", "SELECT a + 1 AS b FROM 'clijson/+'", "--action", """{"republish": {"topic": "clijson-out"}}"""], Ct)).ExitCode);
        var json = (await TrellisCli.RunAsync(host, ["rules", "describe", rule, "--output", "json"], Ct)).Stdout;
        Assert.Contains("\"SELECT a + 1 AS b FROM 'clijson/+'\"", json, StringComparison.Ordinal);

        // The audit log, newest first: the last change is the first line.
        var audit = JsonNode.Parse((await TrellisCli.RunAsync(host, ["audit", "--max", "2", "--output", "json"], Ct)).Stdout)!["events"]!.AsArray();
        Assert.Equal(2, audit.Count);
        Assert.Contains(rule, audit[0]!["target"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.True(string.CompareOrdinal(audit[0]!["time"]!.GetValue<string>(), audit[1]!["time"]!.GetValue<string>()) >= 0);

        // Usage errors: exit 2, in words.
        var badMax = await TrellisCli.RunAsync(host, ["audit", "--max", "abc"], Ct);
        Assert.Equal(2, badMax.ExitCode);
        Assert.Contains("a whole number", badMax.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", badMax.Stderr, StringComparison.Ordinal);
        Assert.Equal(2, (await TrellisCli.RunAsync(host, ["things"], Ct)).ExitCode);

        // certs delete --force is AWS's forceDelete: a certificate with a policy attached goes only with it.
        var made = await host.IotCallsAsync([("create_keys_and_certificate", new { setAsActive = false })], Ct);
        var (id, arn) = (made[0]!["body"]!["certificateId"]!.GetValue<string>(), made[0]!["body"]!["certificateArn"]!.GetValue<string>());
        var policy = TrellisHost.Unique("clipol");
        var attached = await host.IotCallsAsync([("create_policy", new { policyName = policy, policyDocument = Policies.PerThing }), ("attach_policy", new { policyName = policy, target = arn })], Ct);
        Assert.All(attached, r => Assert.Equal(200, r!["status"]!.GetValue<int>()));
        var refused = await TrellisCli.RunAsync(host, ["certs", "delete", id], Ct);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("trellis certs delete --force", refused.Stderr, StringComparison.Ordinal);
        var forced = await TrellisCli.RunAsync(host, ["certs", "delete", id, "--force"], Ct);
        Assert.True(forced.ExitCode == 0, forced.Output);
    }

    [Fact]
    public async Task Provision_leaves_nothing_behind_on_a_missing_policy_and_never_silently_replaces_a_folders_key()
    {
        var thing = TrellisHost.Unique("cliprov");
        var folder = Path.Combine(host.DataDirectory, TrellisHost.Unique("cliprov"));
        async Task<string?> NewestCertificateAsync() => (await host.IotCallsAsync([("list_certificates", new { pageSize = 1, ascendingOrder = false })], Ct))[0]!["body"]!["certificates"]!.AsArray().FirstOrDefault()?["certificateId"]?.GetValue<string>();
        async Task<int> PrincipalsAsync() => (await host.IotCallsAsync([("list_thing_principals", new { thingName = thing })], Ct))[0]!["body"]!["principals"]!.AsArray().Count;
        var newest = await NewestCertificateAsync();

        var missing = await TrellisCli.RunAsync(host, ["provision", "--thing", thing, "--out", folder, "--policy", "no-such-policy"], Ct);
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("policy no-such-policy does not exist", missing.Stderr, StringComparison.Ordinal);
        Assert.Equal(404, (await host.IotCallsAsync([("describe_thing", new { thingName = thing })], Ct))[0]!["status"]!.GetValue<int>());
        Assert.Equal(newest, await NewestCertificateAsync()); // no certificate was made
        Assert.False(Directory.Exists(folder));

        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["provision", "--thing", thing, "--out", folder], Ct)).ExitCode);
        var key = await File.ReadAllTextAsync(Path.Combine(folder, thing + ".private.key"), Ct);
        var again = await TrellisCli.RunAsync(host, ["provision", "--thing", thing, "--out", folder], Ct);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("already holds a device identity", again.Stderr, StringComparison.Ordinal);
        Assert.Equal(key, await File.ReadAllTextAsync(Path.Combine(folder, thing + ".private.key"), Ct));
        Assert.Equal(1, await PrincipalsAsync()); // no second certificate

        var forced = await TrellisCli.RunAsync(host, ["provision", "--thing", thing, "--out", folder, "--force"], Ct);
        Assert.True(forced.ExitCode == 0, forced.Output);
        Assert.NotEqual(key, await File.ReadAllTextAsync(Path.Combine(folder, thing + ".private.key"), Ct));
        Assert.Equal(2, await PrincipalsAsync());
    }

    [Fact]
    public async Task Rules_and_destinations_commands_manage_topic_rules()
    {
        var rule = TrellisHost.Unique("cli_");
        var prefix = TrellisHost.Unique("clirule");

        // A nats action, which boto3 and the AWS CLI refuse client-side, through the CLI.
        var create = await TrellisCli.RunAsync(host,
            ["rules", "create", rule, "--sql", $"SELECT temp FROM '{prefix}/+'", "--action", """{"nats": {"url": "nats://127.0.0.1:4222", "subject": "t.${topic(2)}"}}""",
             "--error-action", "{\"republish\": {\"topic\": \"" + prefix + "-errors\"}}", "--description", "from the cli"], Ct);
        Assert.True(create.ExitCode == 0, create.Output);
        var describe = await TrellisCli.RunAsync(host, ["rules", "describe", rule, "--output", "json"], Ct);
        Assert.Equal("t.${topic(2)}", JsonNode.Parse(describe.Stdout)!["rule"]!["actions"]![0]!["nats"]!["subject"]!.GetValue<string>());
        Assert.Contains(rule, (await TrellisCli.RunAsync(host, ["rules", "list"], Ct)).Stdout, StringComparison.Ordinal);

        var bad = await TrellisCli.RunAsync(host, ["rules", "replace", rule, "--sql", $"SELECT FROM '{prefix}/+'", "--action", """{"republish": {"topic": "x"}}"""], Ct);
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("SqlParseException", bad.Stderr, StringComparison.Ordinal);
        var notJson = await TrellisCli.RunAsync(host, ["rules", "replace", rule, "--sql", "SELECT 1 FROM 'x'", "--action", "{republish"], Ct);
        Assert.Equal(2, notJson.ExitCode);

        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["rules", "disable", rule], Ct)).ExitCode);
        Assert.Contains("true", JsonNode.Parse((await TrellisCli.RunAsync(host, ["rules", "describe", rule, "--output", "json"], Ct)).Stdout)!["rule"]!["ruleDisabled"]!.ToJsonString(), StringComparison.Ordinal);
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["rules", "delete", rule], Ct)).ExitCode);
        Assert.Equal(1, (await TrellisCli.RunAsync(host, ["rules", "describe", rule], Ct)).ExitCode);

        // A destination: created, confirmed with the token its URL received, disabled, deleted.
        using var receiver = new HttpReceiver(confirm: false);
        var destination = await TrellisCli.RunAsync(host, ["destinations", "create", receiver.Url, "--output", "json"], Ct);
        Assert.True(destination.ExitCode == 0, destination.Output);
        var arn = JsonNode.Parse(destination.Stdout)!["topicRuleDestination"]!["arn"]!.GetValue<string>();
        Assert.True(await Eventually.TrueAsync(() => receiver.Confirmations.Count == 1, TimeSpan.FromSeconds(10), Ct), "no confirmation message");
        var confirm = await TrellisCli.RunAsync(host, ["destinations", "confirm", receiver.Confirmations[0]["confirmationToken"]!.GetValue<string>()], Ct);
        Assert.True(confirm.ExitCode == 0, confirm.Output);
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["destinations", "disable", arn], Ct)).ExitCode);
        var listed = await TrellisCli.RunAsync(host, ["destinations", "list", "--output", "json"], Ct);
        Assert.Equal("DISABLED", JsonNode.Parse(listed.Stdout)!["destinationSummaries"]!.AsArray().Single(d => d!["arn"]!.GetValue<string>() == arn)!["status"]!.GetValue<string>());
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["destinations", "delete", arn], Ct)).ExitCode);
        Assert.DoesNotContain(arn, (await TrellisCli.RunAsync(host, ["destinations", "list"], Ct)).Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Templates_and_cas_commands_manage_provisioning()
    {
        var dir = Directory.CreateDirectory(Path.Combine(host.DataDirectory, TrellisHost.Unique("clitpl"))).FullName;
        var name = TrellisHost.Unique("clitpl");
        var bad = Path.Combine(dir, "bad.json");
        var good = Path.Combine(dir, "good.json");
        await File.WriteAllTextAsync(bad, """{"Resources":{"thing":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Ref":"Serial"}}}}}""", Ct);
        await File.WriteAllTextAsync(good, """{"Parameters":{"Serial":{"Type":"String"}},"Resources":{"thing":{"Type":"AWS::IoT::Thing","Properties":{"ThingName":{"Ref":"Serial"}}}}}""", Ct);

        var refused = await TrellisCli.RunAsync(host, ["templates", "create", name, bad], Ct);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("refers to 'Serial', which is not declared", refused.Stderr, StringComparison.Ordinal);
        var created = await TrellisCli.RunAsync(host, ["templates", "create", name, good, "--description", "line 3", "--hook", "http://127.0.0.1:9/hook"], Ct);
        Assert.True(created.ExitCode == 0, created.Output);
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["templates", "new-version", name, good, "--set-default"], Ct)).ExitCode);
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["templates", "disable", name], Ct)).ExitCode);
        var described = JsonNode.Parse((await TrellisCli.RunAsync(host, ["templates", "describe", name, "--output", "json"], Ct)).Stdout)!;
        Assert.False(described["enabled"]!.GetValue<bool>());
        Assert.Equal(2, described["defaultVersionId"]!.GetValue<int>());
        Assert.Equal("http://127.0.0.1:9/hook", described["preProvisioningHook"]!["targetArn"]!.GetValue<string>());
        var listed = await TrellisCli.RunAsync(host, ["templates", "list"], Ct);
        Assert.Contains(name, listed.Stdout, StringComparison.Ordinal);

        // cas: the code, then a CA registered with its verification certificate.
        var code = (await TrellisCli.RunAsync(host, ["cas", "code"], Ct)).Stdout.Trim();
        Assert.Matches("^[0-9a-f]{64}$", code);
        var ca = await OpensslCa.CreateAsync(dir, "cli-ca", Ct);
        var (verification, _) = await ca.IssueAsync("verification", $"/CN={code}", Ct);
        var noProof = await TrellisCli.RunAsync(host, ["cas", "register", ca.CertPath], Ct);
        Assert.Equal(1, noProof.ExitCode);
        Assert.Contains("verificationCertificate is required", noProof.Stderr, StringComparison.Ordinal);
        var registered = await TrellisCli.RunAsync(host, ["cas", "register", ca.CertPath, "--verification", verification, "--output", "json"], Ct);
        Assert.True(registered.ExitCode == 0, registered.Output);
        var id = JsonNode.Parse(registered.Stdout)!["certificateId"]!.GetValue<string>();
        Assert.Contains(id, (await TrellisCli.RunAsync(host, ["cas", "list"], Ct)).Stdout, StringComparison.Ordinal);
        var (device, _) = await ca.IssueAsync("cli-device", "/CN=cli-device", Ct);
        var certificate = await TrellisCli.RunAsync(host, ["certs", "register", device, "--active", "--output", "json"], Ct);
        Assert.True(certificate.ExitCode == 0, certificate.Output);
        var certificateId = JsonNode.Parse(certificate.Stdout)!["certificateId"]!.GetValue<string>();
        Assert.Equal(CertificateStatus.Active, host.Server.Registry.FindCertificate(certificateId)!.Status);
        Assert.Equal(id, host.Server.Registry.FindCertificate(certificateId)!.CaCertificateId);
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["cas", "deactivate", id], Ct)).ExitCode);
        Assert.Equal("INACTIVE", host.Server.Registry.DescribeCaCertificate(id).Value!.Status);
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["cas", "delete", id], Ct)).ExitCode);
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["templates", "delete", name], Ct)).ExitCode);
        Assert.False(host.Server.Registry.DescribeProvisioningTemplate(name).IsSuccess);
    }

    [Fact]
    public async Task Provision_writes_a_device_folder_whose_sample_command_connects_and_publishes()
    {
        var thing = TrellisHost.Unique("prov");
        var folder = Path.Combine(host.DataDirectory, "provisioned", thing);
        var provision = await TrellisCli.RunAsync(host, ["provision", "--thing", thing, "--out", folder, "--output", "json"], Ct);
        Assert.True(provision.ExitCode == 0, provision.Output);
        var summary = JsonNode.Parse(provision.Stdout)!;
        Assert.Equal("TrellisDefaultDevicePolicy", summary["policyName"]!.GetValue<string>());
        Assert.Null(summary["warning"]);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(folder, thing + ".private.key")));
        }

        // The generated command is the device's first message: over TLS, with its certificate, under its policy.
        var script = await File.ReadAllTextAsync(Path.Combine(folder, "connect.sh"), Ct);
        var run = await ExternalTool.RunAsync("sh", [Path.Combine(folder, "connect.sh")], TimeSpan.FromSeconds(30), cancellationToken: Ct);
        Assert.True(run.ExitCode == 0 && run.Stdout.Trim() == $"hello from {thing}", script + "\n" + run.Output);

        // A second device reuses the default policy; an existing thing is fine too.
        var again = await TrellisCli.RunAsync(host, ["provision", "--thing", thing, "--out", folder + "-2"], Ct);
        Assert.True(again.ExitCode == 0, again.Output);
    }

    [Fact]
    public async Task Types_policies_and_certificates_commands_follow_the_api()
    {
        var type = TrellisHost.Unique("ctype");
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["types", "create", type, "--description", "sensors"], Ct)).ExitCode);
        var types = await TrellisCli.RunAsync(host, ["types", "list", "--output", "json"], Ct);
        Assert.Contains(type, types.Stdout, StringComparison.Ordinal);
        var early = await TrellisCli.RunAsync(host, ["types", "delete", type], Ct);
        Assert.Equal(1, early.ExitCode);
        Assert.Contains("must be deprecated", early.Stderr, StringComparison.Ordinal);
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["types", "deprecate", type], Ct)).ExitCode);
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["types", "delete", type], Ct)).ExitCode);

        var policy = TrellisHost.Unique("cpol");
        var file = Path.Combine(host.DataDirectory, policy + ".json");
        await File.WriteAllTextAsync(file, Policies.PerThing, Ct);
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["policies", "create", policy, file], Ct)).ExitCode);
        Assert.Equal(policy, JsonNode.Parse((await TrellisCli.RunAsync(host, ["policies", "get", policy, "--output", "json"], Ct)).Stdout)!["policyName"]!.GetValue<string>());

        var thing = TrellisHost.Unique("ccert");
        var provision = await TrellisCli.RunAsync(host, ["provision", "--thing", thing, "--out", Path.Combine(host.DataDirectory, thing), "--policy", policy, "--output", "json"], Ct);
        Assert.True(provision.ExitCode == 0, provision.Output);
        var arn = JsonNode.Parse(provision.Stdout)!["certificateArn"]!.GetValue<string>();
        var id = arn[(arn.LastIndexOf('/') + 1)..];
        Assert.Contains(id, (await TrellisCli.RunAsync(host, ["certs", "list", "--output", "json"], Ct)).Stdout, StringComparison.Ordinal);
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["certs", "deactivate", id], Ct)).ExitCode);
        var described = JsonNode.Parse((await TrellisCli.RunAsync(host, ["certs", "describe", id, "--output", "json"], Ct)).Stdout)!;
        Assert.Equal("INACTIVE", described["certificateDescription"]!["status"]!.GetValue<string>());
        Assert.Equal(0, (await TrellisCli.RunAsync(host, ["policies", "detach", policy, arn], Ct)).ExitCode);
        Assert.Equal(1, (await TrellisCli.RunAsync(host, ["policies", "create", policy, file], Ct)).ExitCode); // already exists
    }

    [Fact]
    public async Task Bulk_provisioning_resumes_without_duplicates()
    {
        var prefix = TrellisHost.Unique("bulk");
        var csv = Path.Combine(host.DataDirectory, prefix + ".csv");
        var folder = Path.Combine(host.DataDirectory, prefix);
        var names = Enumerable.Range(0, 5).Select(i => $"{prefix}-{i}").ToList();

        // First run: the first three rows (as if interrupted after them).
        await File.WriteAllLinesAsync(csv, ["thingName", .. names.Take(3)], Ct);
        var first = await TrellisCli.RunAsync(host, ["provision", "bulk", "--csv", csv, "--out", folder, "--output", "json"], Ct);
        Assert.True(first.ExitCode == 0, first.Output);
        Assert.Equal(3, JsonNode.Parse(first.Stdout)!["provisioned"]!.GetValue<int>());

        // The whole file again: the three are skipped, the two others made; one certificate per thing.
        await File.WriteAllLinesAsync(csv, ["thingName", .. names], Ct);
        var second = await TrellisCli.RunAsync(host, ["provision", "bulk", "--csv", csv, "--out", folder, "--output", "json"], Ct);
        Assert.True(second.ExitCode == 0, second.Output);
        var summary = JsonNode.Parse(second.Stdout)!;
        Assert.Equal(2, summary["provisioned"]!.GetValue<int>());
        Assert.Equal(3, summary["skipped"]!.GetValue<int>());
        foreach (var name in names)
        {
            Assert.True(File.Exists(Path.Combine(folder, name, name + ".cert.pem")), name);
            Assert.Single(host.Server.Registry.ListThingPrincipals(name, null, null).Value!.Items);
        }

        // Without a terminal the progress is plain lines, and the last says the run is complete.
        var third = await TrellisCli.RunAsync(host, ["provision", "bulk", "--csv", csv, "--out", folder], Ct);
        Assert.True(third.ExitCode == 0, third.Output);
        Assert.Contains("5 of 5 devices (100 %)", third.Stderr, StringComparison.Ordinal);
    }
}
