using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace Trellis.Cli;

internal static partial class ManageCommands
{
    /// <summary><c>trellis outbox</c>: what waits for external rule targets, retry now, purge.</summary>
    private static Command Outbox()
    {
        var list = new Command("list", "Targets with messages waiting (or delivered since start): depth, age of the oldest, rules, last error, next attempt.");
        list.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Get, "/api/outbox", null, null, ct),
            body => Table(new JsonArray([.. (body["targets"]?.AsArray() ?? []).Select(t => (JsonNode)new JsonObject
            {
                ["target"] = t?["target"]?.DeepClone(),
                ["depth"] = t?["depth"]?.DeepClone(),
                ["oldest"] = t?["oldestAgeSeconds"] is { } age ? Age(age.GetValue<double>()) : null,
                ["rules"] = string.Join(",", t?["rules"]?.AsArray().Select(x => x?.GetValue<string>()) ?? []),
                ["lastError"] = t?["lastError"]?.DeepClone(),
                ["nextAttempt"] = t?["nextAttempt"] is { } next ? DateTimeOffset.FromUnixTimeMilliseconds((long)(next.GetValue<double>() * 1000)).ToLocalTime().ToString("HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture) : null,
                ["delivered"] = t?["deliveredSinceStart"]?.DeepClone(),
            })]), "target", "depth", "oldest", "rules", "lastError", "nextAttempt", "delivered")));

        var target = new Argument<string?>("target") { Description = "The target as `trellis outbox list` shows it, e.g. 'http https://hooks.example.com' (default: every target with messages waiting)", Arity = ArgumentArity.ZeroOrOne };
        var retry = new Command("retry", "Try a target now instead of waiting out its back-off.") { target };
        retry.SetAction((r, ct) => RunAsync(r, api => api.SendAsync(HttpMethod.Post, "/api/outbox/retry", null, WithoutNulls(new JsonObject { ["target"] = r.GetValue(target) }), ct),
            body => AnsiConsole.MarkupLine(body["targets"]?.AsArray().Count is > 0
                ? "[green]retrying now:[/] " + Markup.Escape(string.Join(", ", body["targets"]!.AsArray().Select(t => t?.GetValue<string>())))
                : "nothing waits in the outbox")));

        var purgeTarget = new Option<string?>("--target") { Description = "Discard what waits for this target (as `trellis outbox list` shows it)" };
        var purgeRule = new Option<string?>("--rule") { Description = "Discard what this rule left waiting (with --target: only for that target)" };
        var purge = new Command("purge", "Discard waiting messages, undelivered (they do not go to the rule's errorAction); logged with who asked.") { purgeTarget, purgeRule };
        purge.SetAction((r, ct) => r.GetValue(purgeTarget) is null && r.GetValue(purgeRule) is null
            ? Task.FromResult(Usage("say what to discard: --target T, --rule R, or both"))
            : RunAsync(r, api => api.SendAsync(HttpMethod.Post, "/api/outbox/purge", null, WithoutNulls(new JsonObject { ["target"] = r.GetValue(purgeTarget), ["rule"] = r.GetValue(purgeRule) }), ct),
                body => AnsiConsole.MarkupLine($"[yellow]{body["purged"]} message(s) discarded[/]")));

        return Group("outbox", "The durable outbox of external rule actions: what waits per target, retry now, purge (docs/rules.md).", [list, retry, purge]);
    }

    private static string Age(double seconds) => seconds switch
    {
        < 120 => $"{seconds:0} s",
        < 7200 => $"{seconds / 60:0} min",
        _ => $"{seconds / 3600:0.#} h",
    };
}
