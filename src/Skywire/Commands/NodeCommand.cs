using System.CommandLine;

namespace Skywire.Commands;

internal static class NodeCommand
{
    public static Command Create()
    {
        var command = new Command("node", "Run a node (not wired yet).");
        command.SetAction(_ =>
        {
            Console.Error.WriteLine("error: node not implemented yet");
            return Common.Failure;
        });
        return command;
    }
}
