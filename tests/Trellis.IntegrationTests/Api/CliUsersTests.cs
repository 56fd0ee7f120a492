using System.Globalization;
using System.Text.Json.Nodes;
using Trellis.IntegrationTests.TestKit;

namespace Trellis.IntegrationTests.Api;

/// <summary><c>trellis users</c> as a real process: create, list, rotate and delete API users, each key then used by boto3 and mosquitto.</summary>
[Collection(TrellisServerGroup.Name)]
public sealed class CliUsersTests(TrellisHost host)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Users_are_created_listed_rotated_and_deleted_and_old_keys_stop_at_once()
    {
        var name = TrellisHost.Unique("cliuser");
        var created = await TrellisCli.RunAsync(host, ["users", "create", name, "--role", "operator"], Ct);
        Assert.True(created.ExitCode == 0, created.Output);
        var first = Profile(created.Stdout, name);
        Assert.StartsWith("TRLS", first.KeyId, StringComparison.Ordinal);
        Assert.Equal(200, (await host.IotCallsAsync([("create_thing", new { thingName = TrellisHost.Unique("cliuserthing") })], Ct, first))[0]!["status"]!.GetValue<int>());

        var listed = JsonNode.Parse((await TrellisCli.RunAsync(host, ["users", "list", "--output", "json"], Ct)).Stdout)!["users"]!.AsArray();
        var row = Assert.Single(listed, u => u!["name"]!.GetValue<string>() == name)!;
        Assert.Equal((first.KeyId, "operator"), (row["accessKeyId"]!.GetValue<string>(), row["role"]!.GetValue<string>()));
        Assert.Null(row["secretAccessKey"]);

        // An MQTT connection made with the key is dropped when the key is rotated.
        var watcher = TrellisHost.Unique("cliuserwatch");
        using var watching = ExternalTool.StartBackground("mosquitto_sub",
            ["-h", "127.0.0.1", "-p", host.MqttPort.ToString(CultureInfo.InvariantCulture), "-u", first.KeyId, "-P", first.Secret, "-i", watcher, "-t", "cliusers/#", "-V", "mqttv5"]);
        await host.WaitSubscribedAsync(watcher, watching);

        var rotated = await TrellisCli.RunAsync(host, ["users", "rotate", name], Ct); // by name
        Assert.True(rotated.ExitCode == 0, rotated.Output);
        var second = Profile(rotated.Stdout, name);
        Assert.NotEqual(first.KeyId, second.KeyId);
        Assert.True(await Eventually.TrueAsync(() => host.Server.Broker.SubscriptionsOf(watcher).Count == 0, Timeout, Ct), "the rotated key's MQTT connection is still there");
        var old = await host.IotCallsAsync([("list_things", new { })], Ct, first);
        Assert.Equal("UnrecognizedClientException", old[0]!["error"]!.GetValue<string>());
        var renewed = await host.IotCallsAsync([("list_things", new { })], Ct, second);
        Assert.Equal(200, renewed[0]!["status"]!.GetValue<int>());

        // Only admins manage users; the refusal is the API's, exit 1.
        var asOperator = await ExternalTool.RunAsync(TrellisCli.FileName, [.. TrellisCli.Leading, "users", "list", "--endpoint", host.Endpoint],
            Timeout, new Dictionary<string, string> { ["AWS_ACCESS_KEY_ID"] = second.KeyId, ["AWS_SECRET_ACCESS_KEY"] = second.Secret }, Ct);
        Assert.Equal(1, asOperator.ExitCode);
        Assert.Contains("AccessDeniedException", asOperator.Stderr, StringComparison.Ordinal);

        var deleted = await TrellisCli.RunAsync(host, ["users", "delete", second.KeyId], Ct); // by key id
        Assert.True(deleted.ExitCode == 0, deleted.Output);
        Assert.Equal("UnrecognizedClientException", (await host.IotCallsAsync([("list_things", new { })], Ct, second))[0]!["error"]!.GetValue<string>());
        var gone = await TrellisCli.RunAsync(host, ["users", "delete", name], Ct);
        Assert.Equal(1, gone.ExitCode);
        Assert.Contains("ResourceNotFoundException", gone.Stderr, StringComparison.Ordinal);

        var badRole = await TrellisCli.RunAsync(host, ["users", "create", name, "--role", "root"], Ct);
        Assert.Equal(2, badRole.ExitCode);
    }

    /// <summary>The credentials profile the command prints after the table.</summary>
    private static (string KeyId, string Secret) Profile(string stdout, string name)
    {
        var lines = stdout.Split('\n').Select(l => l.Trim()).ToList();
        var at = lines.IndexOf($"[{name}]");
        Assert.True(at >= 0, stdout);
        return (lines[at + 1]["aws_access_key_id = ".Length..], lines[at + 2]["aws_secret_access_key = ".Length..]);
    }
}
