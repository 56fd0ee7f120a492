using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace Trellis.Cli;

internal static partial class ManageCommands
{
    /// <summary><c>trellis users</c>: API users (access keys with a role); admin keys only, as on the API.</summary>
    private static Command Users()
    {
        var name = new Argument<string>("name") { Description = "A name for the person or service the key is for" };
        var role = new Option<string>("--role") { Description = "admin, operator or viewer (default viewer)", DefaultValueFactory = _ => "viewer" };
        role.AcceptOnlyFromAmong("admin", "operator", "viewer");
        var who = new Argument<string>("user") { Description = "The user's access key id (TRLS…) or name" };

        var create = new Command("create", "Create an API user with a new access key; the secret is shown once.") { name, role };
        create.SetAction((r, ct) => RunAsync(r,
            api => api.SendAsync(HttpMethod.Post, "/api/users", null, new JsonObject { ["name"] = r.GetValue(name), ["role"] = r.GetValue(role) }, ct),
            KeyShown));

        var list = new Command("list", "List API users (never their secrets).");
        list.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/api/users", null, null, ct),
            body => Table(body["users"], "name", "accessKeyId", "role", "creationDate")));

        var delete = new Command("delete", "Delete an API user: its key stops working at once and its MQTT connections are dropped.") { who };
        delete.SetAction((r, ct) => RunAsync(r, async api =>
        {
            var id = await KeyIdOfAsync(api, r.GetValue(who)!, ct);
            return id.Ok ? await api.SendAsync(HttpMethod.Delete, "/api/users/" + ApiClient.Segment(id.Body!.GetValue<string>()), null, null, ct) : id;
        }, _ => AnsiConsole.MarkupLine("[green]deleted[/]")));

        var rotate = new Command("rotate", "Give a user a new access key and secret (same name and role); the old key stops working at once.") { who };
        rotate.SetAction((r, ct) => RunAsync(r, async api =>
        {
            var id = await KeyIdOfAsync(api, r.GetValue(who)!, ct);
            return id.Ok ? await api.SendAsync(HttpMethod.Post, $"/api/users/{ApiClient.Segment(id.Body!.GetValue<string>())}/rotate", null, null, ct) : id;
        }, KeyShown));

        return Group("users", "API users: access keys for people and services, each with a role (admin keys only; docs/api.md).", [create, list, delete, rotate]);
    }

    private static void KeyShown(JsonNode body)
    {
        Fields(body);
        AnsiConsole.MarkupLine("[yellow]Store the secret now: it is not shown again.[/] As a credentials profile:");
        Console.WriteLine($"[{Text(body["name"])}]");
        Console.WriteLine($"aws_access_key_id = {Text(body["accessKeyId"])}");
        Console.WriteLine($"aws_secret_access_key = {Text(body["secretAccessKey"])}");
    }

    /// <summary>A user given by access key id or by name: the key id, as a JSON string in an OK answer, or the API's refusal.</summary>
    private static async Task<ApiAnswer> KeyIdOfAsync(ApiClient api, string user, CancellationToken ct)
    {
        var users = await api.SendAsync(HttpMethod.Get, "/api/users", null, null, ct);
        if (!users.Ok)
        {
            return users;
        }

        var found = users.Body?["users"]?.AsArray().FirstOrDefault(u => Text(u?["accessKeyId"]) == user)
            ?? users.Body?["users"]?.AsArray().FirstOrDefault(u => Text(u?["name"]) == user);
        return found is null
            ? new ApiAnswer(404, null, "ResourceNotFoundException", $"No API user has the access key id or name '{user}' (trellis users list shows them).")
            : users with { Body = JsonValue.Create(Text(found["accessKeyId"])) };
    }
}
