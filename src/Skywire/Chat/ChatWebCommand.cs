using System.CommandLine;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Skywire.Apps.Chat;
using Skywire.Commands;
using Skywire.Core.Crypto;
using Viscript.Signal;

namespace Skywire.Chat;

/// <summary>
/// <c>skywire chat web [--listen 127.0.0.1:8090] [--data DIR] [--url-file FILE]</c>: Sky-Messenger in the browser
/// (docs/messenger.md "Sky-Messenger in the browser"). Runs until Ctrl+C or a signal shutdown.
/// </summary>
internal static class ChatWebCommand
{
    /// <summary>Default listen address of the page.</summary>
    public const string DefaultListen = "127.0.0.1:8090";

    /// <summary>The <c>web</c> subcommand of <c>skywire chat</c>; <paramref name="connect"/> connects the messenger client from the parent's options.</summary>
    public static Command Create(Func<ParseResult, CancellationToken, Task<(Core.Messenger.MessengerClient? Client, int Code)>> connect, ILoggerFactory loggerFactory)
    {
        var listen = new Option<string>("--listen") { Description = "Address of the page (loopback only; reach it from elsewhere through an SSH tunnel). Port 0 picks a free port.", DefaultValueFactory = _ => DefaultListen };
        var data = new Option<string?>("--data") { Description = "Folder of contacts, history and the page's sign-in token (mode 0700). Default: ~/.skywire/chat-web/<first 16 hex of your key>." };
        var urlFile = new Option<string?>("--url-file") { Description = "Write the sign-in link to this file (mode 0600) instead of printing it." };
        var command = new Command("web", "Sky-Messenger in the browser: contacts, conversations, live and offline delivery, receipts, key fingerprints. Prints the sign-in link.") { listen, data, urlFile };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            if (!IPEndPoint.TryParse(parse.GetValue(listen)!, out var endPoint) || endPoint.Port is < 0 or > 65535)
            {
                await error.WriteLineAsync($"error: --listen '{parse.GetValue(listen)}' is not ip:port");
                return Common.Usage;
            }

            if (!IPAddress.IsLoopback(endPoint.Address))
            {
                await error.WriteLineAsync($"error: --listen {endPoint} is not a loopback address: the page is your chat; reach it from another host through an SSH tunnel (ssh -L 8090:127.0.0.1:8090 HOST)");
                return Common.Usage;
            }

            var (client, code) = await connect(parse, cancellationToken);
            if (client is null)
            {
                return code;
            }

            var folder = parse.GetValue(data) ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".skywire", "chat-web", client.Key.ToString()[..16]);
            ChatStore store;
            string token;
            try
            {
                store = new ChatStore(folder);
                token = LoadOrCreateToken(Path.Combine(store.Folder, "web-token"));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or SecretFileException)
            {
                await client.DisposeAsync();
                await error.WriteLineAsync($"error: chat data folder {folder}: {ex.Message}");
                return Common.Failure;
            }

            await using var chat = new ChatService(client, store, loggerFactory);
            ChatWebServer server;
            try
            {
                server = await ChatWebServer.StartAsync(endPoint, token, chat, loggerFactory, cancellationToken);
            }
            catch (IOException ex)
            {
                await error.WriteLineAsync($"error: chat web listener (TCP, --listen) {endPoint}: {ex.Message}");
                return Common.Failure;
            }

            await using (server)
            {
                var link = $"{server.BaseUrl}#token={token}";
                await output.WriteLineAsync($"chat web: {chat.Key} (fingerprint {chat.Fingerprint}) through messenger {client.MessengerKey}");
                if (parse.GetValue(urlFile) is { } file)
                {
                    try
                    {
                        SecretFile.Write(file, Encoding.UTF8.GetBytes(link + "\n"), _ => null);
                    }
                    catch (SecretFileException ex)
                    {
                        await error.WriteLineAsync("error: --url-file: " + ex.Message);
                        return Common.Failure;
                    }

                    await output.WriteLineAsync($"chat web: {server.BaseUrl} (sign-in link in {file})");
                }
                else
                {
                    await output.WriteLineAsync($"chat web: open {link}");
                }

                await output.FlushAsync(CancellationToken.None);
                await using var signal = SignalClient.StartFromEnvironment();
                using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, signal.ShutdownToken);
                ServiceReadiness.Ready($"chat web {server.BaseUrl} as {chat.Key}");
                try
                {
                    await Task.Delay(Timeout.Infinite, stop.Token);
                }
                catch (OperationCanceledException)
                {
                }

                ServiceReadiness.Stopping();
                return 0;
            }
        });
        return command;
    }

    /// <summary>The page's token: kept (mode 0600) so a signed-in browser stays signed in across restarts on the same port.</summary>
    private static string LoadOrCreateToken(string path)
    {
        if (File.Exists(path))
        {
            var existing = File.ReadAllText(path).Trim();
            if (existing.Length >= 32)
            {
                return existing;
            }
        }

        var token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        SecretFile.Write(path, Encoding.ASCII.GetBytes(token), _ => null);
        return token;
    }
}
