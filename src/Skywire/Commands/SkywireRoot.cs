using System.CommandLine;

namespace Skywire.Commands;

/// <summary>The <c>skywire</c> command tree (Program runs it; tests walk it).</summary>
internal static class SkywireRoot
{
    public static RootCommand Create()
    {
        var root = new RootCommand("Skywire: a peer-to-peer overlay mesh. Commands: keygen, manager, node, cli, app, ledger, messenger, chat, demo.");
        root.Subcommands.Add(KeygenCommand.Create());
        root.Subcommands.Add(ManagerCommand.Create());
        root.Subcommands.Add(NodeCommand.Create());
        root.Subcommands.Add(CliCommand.Create());
        root.Subcommands.Add(AppCommand.Create());
        root.Subcommands.Add(LedgerCommand.Create());
        AppsWiring.AddTo(root);
        return root;
    }
}
