using System.CommandLine;
using System.Runtime.InteropServices;
using Skywire.Commands;

var root = new RootCommand("Skywire: a peer-to-peer overlay mesh. Commands: keygen, manager, node, cli, app, ledger, messenger, chat, demo.");
root.Subcommands.Add(KeygenCommand.Create());
root.Subcommands.Add(ManagerCommand.Create());
root.Subcommands.Add(NodeCommand.Create());
root.Subcommands.Add(CliCommand.Create());
root.Subcommands.Add(AppCommand.Create());
root.Subcommands.Add(LedgerCommand.Create());
AppsWiring.AddTo(root);
// Ctrl+C and SIGTERM cancel the running command's token, so it stops cleanly (System.CommandLine 2.0.0
// installs no handler by default). A second signal, while the first is being handled, ends the process at once.
using var shutdown = new CancellationTokenSource();
void OnSignal(PosixSignalContext context)
{
    context.Cancel = !shutdown.IsCancellationRequested;
    shutdown.Cancel();
}

using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
return await root.Parse(args).InvokeAsync(cancellationToken: shutdown.Token);
