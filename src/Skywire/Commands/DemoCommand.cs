using System.CommandLine;
using System.Runtime.InteropServices;
using Skywire.Demo;

namespace Skywire.Commands;

/// <summary><c>skywire demo [--check]</c>: a local mesh under viscript in one command (docs/operations.md "The demo").</summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var check = new Option<bool>("--check") { Description = "Bring everything up, fetch a page through the SOCKS proxy across the multi-hop route, verify it byte for byte, stop everything; exit 0 (passed) or 1." };
        var dir = new Option<string?>("--dir") { Description = "Folder for keys, app tokens, the generated viscript config and logs (default ~/.skywire/demo; with --check a temporary folder, removed when the check passes)." };
        var nodes = new Option<int>("--nodes") { Description = "Nodes in the chain (3 to 26); the route from the first to the last crosses all of them.", DefaultValueFactory = _ => 4 };
        var socksPort = new Option<int>("--socks-port") { Description = "Local port of the SOCKS5 proxy (0 picks a free one).", DefaultValueFactory = _ => 0 };
        var timeout = new Option<double>("--step-timeout") { Description = "Seconds each bring-up step may take before the demo gives up.", DefaultValueFactory = _ => 90 };
        var metering = new Option<bool>("--metering") { Description = "Meter the routes: the manager keeps a ledger in DIR/ledger (node A is granted 100 SKY and pays, relays and the exit earn); `skywire ledger balances DIR/ledger` shows it." };
        var vpn = new Option<bool>("--vpn") { Description = "Add the VPN (needs root): vpn-server beside the last node, vpn-client beside the first with its tunnel in a network namespace the demo makes; ping and fetch a page through the tunnel across the chain." };
        var viscript = new Option<string?>("--viscript") { Description = "viscript.dll or executable to run (default: beside skywire, or env SKYWIRE_VISCRIPT)." };
        var command = new Command("demo", "Run a local mesh under viscript: messenger, manager, a chain of nodes, a SOCKS pair; print a summary with the GUI's address and run until Ctrl+C (--check: headless, verify, stop).")
        {
            check, dir, nodes, socksPort, timeout, viscript, metering, vpn,
        };
        command.Subcommands.Add(CreateTopology());
        command.Validators.Add(result =>
        {
            if (result.GetValue(nodes) is var n && n != 0 && n is < 3 or > 26)
            {
                result.AddError("--nodes must be 3 to 26");
            }

            if (result.GetValue(socksPort) is < 0 or > 65535)
            {
                result.AddError("--socks-port must be 0 to 65535");
            }

            if (result.GetValue(timeout) is var t && t != 0 && t is < 1 or > 3600)
            {
                result.AddError("--step-timeout must be 1 to 3600 seconds");
            }
        });
        command.SetAction(async (parse, cancellationToken) =>
        {
            var options = new DemoOptions
            {
                Check = parse.GetValue(check),
                Directory = parse.GetValue(dir),
                Nodes = parse.GetValue(nodes),
                SocksPort = parse.GetValue(socksPort),
                StepTimeout = TimeSpan.FromSeconds(parse.GetValue(timeout)),
                Viscript = parse.GetValue(viscript),
                Metering = parse.GetValue(metering),
                Vpn = parse.GetValue(vpn),
            };

            // Ctrl+C, SIGTERM, SIGQUIT, SIGHUP (terminal closed): stop viscript and its apps, then exit. System.CommandLine 2.0.0 leaves these
            // signals unhandled (its ProcessTerminationTimeout defaults to null: the process would die at once and
            // orphan viscript), so the demo handles them itself.
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var registrations = new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGQUIT, PosixSignal.SIGHUP }.Select(signal => PosixSignalRegistration.Create(signal, context =>
            {
                context.Cancel = true;
                stop.Cancel();
            })).ToList();

            // A System.CommandLine that does handle them ends the process 2 s after the signal; stopping can take
            // longer. Hold the exit until the demo has stopped everything (bounded), so no child outlives it.
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            void Hold(object? sender, EventArgs e) => done.Task.Wait(90_000, CancellationToken.None);
            AppDomain.CurrentDomain.ProcessExit += Hold;
            try
            {
                await using var runner = new DemoRunner(options, Console.Out, Console.Error, interactive: !Console.IsOutputRedirected);
                return await runner.RunAsync(stop.Token);
            }
            finally
            {
                done.TrySetResult();
                AppDomain.CurrentDomain.ProcessExit -= Hold;
                registrations.ForEach(r => r.Dispose());
            }
        });
        return command;
    }

    private static Command CreateTopology()
    {
        var dir = new Option<string>("--dir") { Description = "The demo's folder.", Required = true };
        var interval = new Option<double>("--interval") { Description = "Seconds between documents.", DefaultValueFactory = _ => 2 };
        var command = new Command("topology", "The demo's mesh as topology JSON lines for viscript's GUI: waits for DIR/manager.address, then runs 'cli ... topology --json --watch' with DIR/keys/operator.json.")
        {
            dir, interval,
        };
        command.SetAction((parse, cancellationToken) => DemoTopology.RunAsync(Path.GetFullPath(parse.GetValue(dir)!), parse.GetValue(interval), Console.Out, cancellationToken));
        return command;
    }
}
