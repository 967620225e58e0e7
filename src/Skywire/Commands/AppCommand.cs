using System.CommandLine;
using Skywire.Apps.Nc;
using Skywire.Core.AppApi;

namespace Skywire.Commands;

internal static class AppCommand
{
    public static Command Create()
    {
        var app = new Command("app", "Run an app beside a node.");
        app.Subcommands.Add(Nc());
        return app;
    }

    private static Command Nc()
    {
        var nodeApps = new Option<string>("--node-apps") { Description = "The node's app API address (ip:port, loopback).", Required = true };
        var tokenFile = new Option<string>("--token-file") { Description = "The node's app token file (re-read while waiting: the app waits for its node to start or come back).", Required = true };
        var name = new Option<string>("--name") { Description = "This app's name in the tracker.", Required = true };
        var listen = new Option<bool>("--listen") { Description = "Accept one stream and copy it to stdout; exit 0 when the peer closes." };
        var to = new Option<string?>("--to") { Description = "NODEKEY/APPNAME: copy stdin into a stream to that app; exit 0 when done." };
        var command = new Command("nc", "Netcat over the mesh.") { nodeApps, tokenFile, name, listen, to };
        command.Validators.Add(result =>
        {
            if (result.GetValue(listen) == (result.GetValue(to) is not null))
            {
                result.AddError("give exactly one of --listen and --to");
            }
        });
        command.SetAction(async (parse, cancellationToken) =>
        {
            if (!Common.TryParseEndPoint(parse.GetValue(nodeApps)!, out var endPoint, "--node-apps"))
            {
                return Common.Usage;
            }

            try
            {
                // Waits for the node (started after this app, or restarting), re-reading its token file.
                var waiting = 0;
                var options = new NcOptions
                {
                    NodeApps = endPoint, TokenFile = parse.GetValue(tokenFile)!, Name = parse.GetValue(name)!,
                    OnWaiting = ex =>
                    {
                        if (waiting++ == 0)
                        {
                            Console.Error.WriteLine($"waiting for the node at {endPoint}: {ex.Message}");
                        }
                    },
                };
                await using var stdout = Console.OpenStandardOutput();
                if (parse.GetValue(listen))
                {
                    var n = await NcApp.ListenAsync(options, stdout, ready => Console.Error.WriteLine($"listening as {ready}"), cancellationToken);
                    Console.Error.WriteLine($"received {n} bytes");
                }
                else
                {
                    await using var stdin = Console.OpenStandardInput();
                    var n = await NcApp.DialAsync(options, parse.GetValue(to)!, stdin, stdout, cancellationToken);
                    Console.Error.WriteLine($"sent {n} bytes");
                }

                return Common.Ok;
            }
            catch (AppApiException ex)
            {
                Console.Error.WriteLine($"error: {ex.Message} ({ex.Code})");
                return Common.Failure;
            }
            catch (FormatException ex)
            {
                Console.Error.WriteLine($"error: {ex.Message}");
                return Common.Usage;
            }
            catch (IOException ex)
            {
                Console.Error.WriteLine($"error: stream failed: {ex.Message}");
                return Common.Failure;
            }
        });
        return command;
    }
}
