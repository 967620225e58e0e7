using System.CommandLine;
using System.CommandLine.Parsing;

namespace Skywire.Commands;

/// <summary>
/// `skywire node --vpn-server "OPTIONS"` / `--vpn-client "OPTIONS"`: the vpn app runs inside the node's process
/// (docs/vpn.md "In the node's process"). Its control (registration, dial, hello) still goes through the node's app
/// API; its packets go straight between the TUN threads and the node's sessions, without the app API connection and
/// the threads on both sides of it. The options are vpn-server's or vpn-client's, without --node-apps/--token-file.
/// </summary>
internal sealed class NodeVpn
{
    private readonly List<(string Option, ParseResult Parse, VpnInNode InNode)> _apps = [];

    public Option<string[]> Server { get; } = new("--vpn-server")
    {
        Description = "Run a vpn-server inside this node's process (one quoted string of `skywire app vpn-server` options without --node-apps/--token-file, e.g. \"--allow KEY --no-nat\"): its packets skip the app API. Needs root.",
    };

    public Option<string[]> Client { get; } = new("--vpn-client")
    {
        Description = "Run a vpn-client inside this node's process (one quoted string of `skywire app vpn-client` options without --node-apps/--token-file, e.g. \"--route 10.1.0.0/16\"): its packets skip the app API. Needs root.",
    };

    public void AddTo(Command command)
    {
        command.Options.Add(Server);
        command.Options.Add(Client);
    }

    /// <summary>Parses every --vpn-server/--vpn-client value; false (errors written) when one is not valid.</summary>
    public bool TryParse(ParseResult parse, TextWriter error)
    {
        foreach (var (option, server) in new[] { (Server, true), (Client, false) })
        {
            foreach (var value in parse.GetValue(option) ?? [])
            {
                var inNode = new VpnInNode();
                var command = VpnCommands.InNode(server, () => Common.Logging(), inNode);
                var root = new RootCommand { command };
                var result = root.Parse([command.Name, .. CommandLineParser.SplitCommandLine(value)]);
                if (result.Errors.Count > 0)
                {
                    foreach (var e in result.Errors)
                    {
                        error.WriteLine($"error: {option.Name} \"{value}\": {e.Message}");
                    }

                    return false;
                }

                _apps.Add((option.Name, result, inNode));
            }
        }

        return true;
    }

    /// <summary>Whether any vpn app runs in this node.</summary>
    public bool Any => _apps.Count > 0;

    /// <summary>
    /// Starts the apps in <paramref name="node"/>'s process; the task ends when one of them ends (with its exit code)
    /// or, after <paramref name="stop"/>, when all have undone their host changes.
    /// </summary>
    public async Task<int> RunAsync(Skywire.Core.Node.NodeHost node, CancellationToken stop)
    {
        using var all = CancellationTokenSource.CreateLinkedTokenSource(stop);
        var runs = new List<Task<int>>();
        foreach (var (_, parse, inNode) in _apps)
        {
            inNode.Node = node;
            runs.Add(parse.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }, all.Token));
        }

        var first = await Task.WhenAny(runs);
        var ended = await first;
        var byItself = !stop.IsCancellationRequested;

        // One app ended by itself (refused, failed): the others stop too, then the node.
        await all.CancelAsync();
        var codes = await Task.WhenAll(runs);
        return byItself ? Math.Max(ended, Common.Failure) : codes.Max();
    }
}
