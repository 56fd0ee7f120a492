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
root.Subcommands.Add(GatewayCommand.Create());
root.Subcommands.Add(SimulateCommand.Create());

return await root.Parse(args).InvokeAsync();
