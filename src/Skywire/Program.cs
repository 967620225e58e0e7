using System.CommandLine;
using Skywire.Commands;

var root = new RootCommand("Skywire: a peer-to-peer overlay mesh. Commands: keygen, manager, node, cli, app, messenger, chat, demo.");
root.Subcommands.Add(KeygenCommand.Create());
root.Subcommands.Add(ManagerCommand.Create());
root.Subcommands.Add(NodeCommand.Create());
root.Subcommands.Add(CliCommand.Create());
root.Subcommands.Add(AppCommand.Create());
AppsWiring.AddTo(root);
return await root.Parse(args).InvokeAsync();
