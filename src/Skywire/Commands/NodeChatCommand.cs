using System.CommandLine;
using System.Net;
using Skywire.Apps.Chat;
using Skywire.Core.AppApi;
using Skywire.Core.Sdk;

namespace Skywire.Commands;

/// <summary>The <c>skywire app chat</c> command over <see cref="NodeChat"/>.</summary>
internal static class NodeChatCommand
{
    /// <summary>The <c>skywire app chat</c> command: <c>listen</c> and <c>send NODEKEY/APP TEXT</c>.</summary>
    public static Command CreateCommand()
    {
        var nodeApps = new Option<string>("--node-apps") { Description = "The node's app API address (ip:port on loopback).", Required = true, Recursive = true };
        var tokenFile = new Option<string>("--token-file") { Description = "The node's app token file.", Required = true, Recursive = true };
        var name = new Option<string>("--name") { Description = "This app's name in the app tracker, for listen.", DefaultValueFactory = _ => "chat", Recursive = true };

        var listen = new Command("listen", "Print each message as it arrives: '<node key>[/<app>] <text>' (control characters escaped).");
        listen.SetAction(async (parse, cancellationToken) => await RunAsync(parse.GetValue(nodeApps)!, parse.GetValue(tokenFile)!, async (endPoint, token) =>
        {
            var output = Console.Out;
            await NodeChat.ListenAsync(endPoint, token, parse.GetValue(name)!, async message =>
            {
                await output.WriteLineAsync($"{(message.FromApp is null ? message.FromNode : $"{message.FromNode}/{message.FromApp}")} {MessengerCommands.Escape(message.Text)}");
                await output.FlushAsync(cancellationToken);
            }, ready => Console.Error.WriteLine($"chat: listening as {ready}"), cancellationToken);
        }));

        var target = new Argument<string>("target") { Description = "NODEKEY/APPNAME of the receiving chat app." };
        var text = new Argument<string>("text") { Description = "The message (UTF-8, at most 64 KiB)." };
        var send = new Command("send", "Send one message and wait until the receiver confirms it.") { target, text };
        send.SetAction(async (parse, cancellationToken) => await RunAsync(parse.GetValue(nodeApps)!, parse.GetValue(tokenFile)!, (endPoint, token) =>
            NodeChat.SendAsync(endPoint, token, parse.GetValue(name)!, parse.GetValue(target)!, parse.GetValue(text)!, cancellationToken)));

        return new Command("chat", "Chat with an app beside another node, across the mesh.") { nodeApps, tokenFile, name, listen, send };
    }

    private static async Task<int> RunAsync(string nodeApps, string tokenFile, Func<IPEndPoint, string, Task> run)
    {
        if (!IPEndPoint.TryParse(nodeApps, out var endPoint))
        {
            await Console.Error.WriteLineAsync($"error: --node-apps '{nodeApps}' is not ip:port");
            return 2;
        }

        try
        {
            // Inert unless viscript launched us; a viscript shutdown ends the process after the client's grace period.
            await using var signal = Viscript.Signal.SignalClient.StartFromEnvironment();
            await run(endPoint, SkywireApp.ReadTokenFile(tokenFile));
            return 0;
        }
        catch (OperationCanceledException)
        {
            return 0;
        }
        catch (Exception ex) when (ex is AppApiException or IOException or FormatException or ArgumentException)
        {
            await Console.Error.WriteLineAsync($"error: {ex.Message}");
            return 1;
        }
    }
}
