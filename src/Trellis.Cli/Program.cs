using System.CommandLine;
using Trellis.Cli;

var root = new RootCommand("Trellis: a self-hosted IoT platform (MQTT broker, device registry, AWS IoT-compatible API).");
root.Subcommands.Add(ServeCommand.Create());
ManageCommands.AddGlobalOptions(root);
foreach (var command in ManageCommands.Create())
{
    root.Subcommands.Add(command);
}

root.Subcommands.Add(ProvisionCommand.Create());
foreach (var command in MqttCommands.Create())
{
    root.Subcommands.Add(command);
}

root.Subcommands.Add(GatewayCommand.Create());
root.Subcommands.Add(SimulateCommand.Create());

var parse = root.Parse(args);
if (parse.Errors.Count > 0)
{
    // Usage errors exit 2 (docs/cli.md), in words rather than .NET type names.
    foreach (var error in parse.Errors)
    {
        await Console.Error.WriteLineAsync("trellis: " + error.Message
            .Replace("System.Nullable`1[System.Int32]", "a whole number", StringComparison.Ordinal)
            .Replace("System.Nullable`1[System.Int64]", "a whole number", StringComparison.Ordinal)
            .Replace("System.Int32", "a whole number", StringComparison.Ordinal)
            .Replace("System.Int64", "a whole number", StringComparison.Ordinal)
            .Replace("System.Nullable`1[System.Double]", "a number", StringComparison.Ordinal)
            .Replace("System.Double", "a number", StringComparison.Ordinal)
            .Replace("System.Boolean", "true or false", StringComparison.Ordinal));
    }

    await Console.Error.WriteLineAsync($"Run '{string.Join(' ', ["trellis", .. parse.CommandResult.Command.Name == root.Name ? [] : CommandPath(parse.CommandResult)])} --help' for usage.");
    return 2;
}

return await parse.InvokeAsync();

static IEnumerable<string> CommandPath(System.CommandLine.Parsing.CommandResult result) =>
    result.Parent is System.CommandLine.Parsing.CommandResult parent && parent.Parent is not null ? [.. CommandPath(parent), result.Command.Name] : [result.Command.Name];

