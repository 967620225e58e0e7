using System.CommandLine;
using System.Net;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Apps.Chat;
using Skywire.Chat;
using Skywire.Core.Channels;
using Skywire.Core.Control;
using Skywire.Core.Diagnostics;
using Skywire.Core.Messenger;
using Skywire.Metrics;
using Skywire.Protocol;
using Skywire.Protocol.Messenger;
using Viscript.Signal;

namespace Skywire.Commands;

/// <summary>
/// The <c>skywire messenger</c> and <c>skywire chat</c> commands (docs/messenger.md "Commands"). The executable adds
/// them to its root command; they write to the invocation's output and error writers.
/// Exit codes: those of every skywire command (docs/operations.md "Exit codes"): 0 success, 1 failure, 2 usage,
/// 3 the messenger did not prove its key or refused ours, 6 cannot connect or the connection was lost, 8 the message was dropped.
/// </summary>
internal static class MessengerCommands
{
    /// <summary>Exit code: the messenger did not prove its pinned key, or refused ours.</summary>
    public const int ExitForbidden = Common.Forbidden;

    /// <summary>Exit code: cannot connect to the messenger, or the connection was lost.</summary>
    public const int ExitUnavailable = Common.Unavailable;

    /// <summary>Exit code: the messenger dropped the message (the drop notice is printed).</summary>
    public const int ExitDropped = Common.Dropped;

    /// <summary>Exit code: bad arguments (malformed key, address or option).</summary>
    public const int ExitUsage = Common.Usage;

    /// <summary>Exit code: anything else (an unreadable key file, a listener that cannot bind).</summary>
    public const int ExitFailure = Common.Failure;

    /// <summary>The exit code for a messenger error.</summary>
    public static int ExitCode(MessengerErrorCode code) => code switch
    {
        MessengerErrorCode.Forbidden or MessengerErrorCode.Conflict => ExitForbidden,
        MessengerErrorCode.BadRequest => ExitUsage,
        MessengerErrorCode.NotFound => Common.NotFound,
        MessengerErrorCode.RateLimited => Common.LimitExceeded,
        MessengerErrorCode.Unavailable => ExitUnavailable,
        _ => ExitFailure,
    };

    private static string DefaultKeyPath(string name) =>
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".skywire", name);

    /// <summary><c>skywire messenger --listen 127.0.0.1:8080 --key FILE</c>: runs a messenger until Ctrl+C or a signal shutdown.</summary>
    /// <param name="loggerFactory">Where the server logs (null: nowhere).</param>
    public static Command CreateMessengerCommand(ILoggerFactory? loggerFactory = null)
    {
        var listen = new Option<string>("--listen") { Description = "Address to listen on (host:port). Loopback by default; other hosts reach it only if you bind a public address.", DefaultValueFactory = _ => "127.0.0.1:8080" };
        var key = new Option<string>("--key") { Description = "Key file of the messenger (JSON, created with mode 0600 if missing).", DefaultValueFactory = _ => DefaultKeyPath("messenger-key.json") };
        var queueMessages = new Option<int>("--queue-messages") { Description = "Messages kept per offline key.", DefaultValueFactory = _ => MessengerServerOptions.Default.QueueMaxMessages };
        var queueBytes = new Option<long>("--queue-bytes") { Description = "Bytes kept per offline key.", DefaultValueFactory = _ => MessengerServerOptions.Default.QueueMaxBytes };
        var queueTtl = new Option<int>("--queue-ttl") { Description = "Seconds a message waits for an offline key before it is dropped.", DefaultValueFactory = _ => (int)MessengerServerOptions.Default.QueueTtl.TotalSeconds };
        var rate = new Option<double>("--rate") { Description = "Messages and requests per second allowed per key.", DefaultValueFactory = _ => MessengerServerOptions.Default.RatePerSecond };
        var burst = new Option<int>("--burst") { Description = "Burst allowed per key above the rate.", DefaultValueFactory = _ => MessengerServerOptions.Default.RateBurst };
        var store = new Option<string?>("--store") { Description = "etcd://HOST:PORT[,HOST:PORT...][/PREFIX]: share presence and the service directory with the other messengers on this etcd cluster, and forward messages for keys connected to them (docs/operations.md \"Several messengers (etcd)\"). Default: this messenger alone." };
        var advertise = new Option<string?>("--advertise") { Description = "With --store: the ip:port other messengers reach this one at (default: the --listen address; needed when --listen is a wildcard)." };
        var metrics = MetricsOption.Create();
        var command = new Command("messenger", "Run a messenger: relays end-to-end encrypted messages and streams between public keys, stores messages for offline keys, keeps a service directory.")
        {
            listen, key, queueMessages, queueBytes, queueTtl, rate, burst, store, advertise, metrics,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            if (!IPEndPoint.TryParse(parse.GetValue(listen)!, out var endPoint))
            {
                await error.WriteLineAsync($"error: --listen '{parse.GetValue(listen)}' is not ip:port");
                return ExitUsage;
            }

            if (!MetricsOption.TryGet(parse, metrics, error, out var metricsEndPoint))
            {
                return ExitUsage;
            }

            var options = MessengerServerOptions.Default with
            {
                QueueMaxMessages = parse.GetValue(queueMessages),
                QueueMaxBytes = parse.GetValue(queueBytes),
                QueueTtl = TimeSpan.FromSeconds(Math.Max(1, parse.GetValue(queueTtl))),
                RatePerSecond = parse.GetValue(rate),
                RateBurst = parse.GetValue(burst),
            };
            var problems = options.Validate();
            if (problems.Count > 0)
            {
                await error.WriteLineAsync("error: " + string.Join("; ", problems));
                return ExitUsage;
            }

            IPEndPoint? advertised = null;
            var storeText = parse.GetValue(store);
            if (parse.GetValue(advertise) is { } advertiseText && (!IPEndPoint.TryParse(advertiseText, out advertised) || advertised.Port == 0 || advertised.Address.Equals(IPAddress.Any) || advertised.Address.Equals(IPAddress.IPv6Any)))
            {
                await error.WriteLineAsync($"error: --advertise '{advertiseText}' is not a reachable ip:port");
                return ExitUsage;
            }

            if (storeText is not null && !storeText.StartsWith("etcd://", StringComparison.OrdinalIgnoreCase))
            {
                await error.WriteLineAsync($"error: --store '{storeText}' is not etcd://HOST:PORT[,HOST:PORT...][/PREFIX] (the messenger shares its presence through etcd only)");
                return ExitUsage;
            }

            if (storeText is not null && advertised is null && (endPoint.Address.Equals(IPAddress.Any) || endPoint.Address.Equals(IPAddress.IPv6Any)))
            {
                await error.WriteLineAsync($"error: --listen {endPoint} is a wildcard address: give --advertise ip:port, where the other messengers reach this one");
                return ExitUsage;
            }

            Skywire.Core.Manager.Store.EtcdStore? etcd;
            try
            {
                etcd = storeText is null ? null : new Skywire.Core.Manager.Store.EtcdStore(Skywire.Core.Manager.Store.EtcdStoreOptions.Parse(storeText), (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<Skywire.Core.Manager.Store.EtcdStore>());
            }
            catch (FormatException ex)
            {
                await error.WriteLineAsync("error: --store: " + ex.Message);
                return ExitUsage;
            }

            await using var etcdLifetime = etcd;

            // The key is written only once the listener is bound: a command that fails leaves no key file.
            using var pending = Common.OpenKey(parse.GetValue(key)!, error);
            if (pending is null)
            {
                return ExitFailure;
            }

            await using var server = new MessengerServer(pending.Key, options, loggerFactory, store: etcd);
            try
            {
                ListenerBindException.Bind("messenger listener (TCP, --listen)", endPoint, () => server.Start(endPoint, advertised));
            }
            catch (ListenerBindException ex)
            {
                await error.WriteLineAsync("error: " + ex.Message);
                return ExitFailure;
            }

            var (metricsOk, metricsServer) = await MetricsOption.StartAsync(metricsEndPoint, "skywire-messenger", [SkywireMeters.Messenger, SkywireMeters.Signal], error, cancellationToken);
            await using var metricsLifetime = metricsServer;
            if (!metricsOk || !pending.Commit(error))
            {
                return ExitFailure;
            }

            await using var signal = SignalClient.StartFromEnvironment();
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, signal.ShutdownToken);

            await output.WriteLineAsync($"messenger {server.Key} listening on {server.LocalEndPoint}");
            if (etcd is not null)
            {
                await output.WriteLineAsync($"presence shared through {etcd.Description}");
            }

            await output.FlushAsync(CancellationToken.None);
            ServiceReadiness.Ready($"messenger {server.Key} listening on {server.LocalEndPoint}");
            try
            {
                await Task.Delay(Timeout.Infinite, stop.Token);
            }
            catch (OperationCanceledException)
            {
            }

            ServiceReadiness.Stopping();
            return 0;
        });
        return command;
    }

    /// <summary><c>skywire chat --messenger ADDR --messenger-key PUBKEY --key FILE send PUBKEY TEXT | listen</c>.</summary>
    /// <param name="loggerFactory">Where the client logs (null: nowhere).</param>
    public static Command CreateChatCommand(ILoggerFactory? loggerFactory = null)
    {
        loggerFactory ??= NullLoggerFactory.Instance;
        var messenger = new Option<string>("--messenger") { Description = "Messenger address: host:port, or PUBKEY@host:port.", Required = true, Recursive = true };
        var messengerKey = new Option<string?>("--messenger-key") { Description = "The messenger's public key (66 hex); the connection is refused if the server cannot prove it.", Recursive = true };
        var key = new Option<string>("--key") { Description = "Your key file (JSON, created with mode 0600 if missing).", DefaultValueFactory = _ => DefaultKeyPath("chat-key.json"), Recursive = true };

        var to = new Argument<string>("pubkey") { Description = "Recipient's public key (66 hex)." };
        var text = new Argument<string>("text") { Description = "The message." };
        var send = new Command("send", "Send one message (end-to-end encrypted). Exits 3 if the messenger dropped it.") { to, text };
        send.SetAction(async (parse, cancellationToken) =>
        {
            var error = parse.InvocationConfiguration.Error;
            if (!PubKey.TryParse(parse.GetValue(to), out var recipient))
            {
                await error.WriteLineAsync($"error: '{parse.GetValue(to)}' is not a public key (66 hex characters)");
                return ExitUsage;
            }

            var (client, code) = await ConnectAsync(parse, messenger, messengerKey, key, loggerFactory, cancellationToken);
            if (client is null)
            {
                return code;
            }

            await using (client)
            {
                var body = Encoding.UTF8.GetBytes(parse.GetValue(text) ?? "");
                if (body.Length > MessengerProtocol.MaxMessageSize)
                {
                    await error.WriteLineAsync($"error: a message is at most {MessengerProtocol.MaxMessageSize} bytes");
                    return ExitUsage;
                }

                try
                {
                    var id = await client.SendAsync(recipient, body, cancellationToken);

                    // The messenger handles our frames in order: after the ping, a drop notice for the message would be here.
                    await client.PingAsync(cancellationToken);
                    while (client.Drops.TryRead(out var drop))
                    {
                        if (drop.MessageId == id)
                        {
                            await error.WriteLineAsync($"error: the messenger dropped the message ({drop.Reason}): {drop.Detail}");
                            return ExitDropped;
                        }
                    }
                }
                catch (MessengerException ex)
                {
                    await error.WriteLineAsync("error: " + ex.Message);
                    return ExitCode(ex.Code);
                }

                await parse.InvocationConfiguration.Output.WriteLineAsync($"sent to {recipient}");
                return 0;
            }
        });

        var count = new Option<int>("--count") { Description = "Exit after this many messages (0: run until Ctrl+C)." };
        var listen = new Command("listen", "Print each message received, one per line: the sender's public key, a space, the text (control characters escaped). Reconnects by itself when the connection drops.") { count };
        listen.SetAction(async (parse, cancellationToken) =>
        {
            // A listener outlives connection drops: the client reconnects and registers again by itself.
            var (client, code) = await ConnectAsync(parse, messenger, messengerKey, key, loggerFactory, cancellationToken, reconnect: true);
            if (client is null)
            {
                return code;
            }

            var output = parse.InvocationConfiguration.Output;
            await output.WriteLineAsync($"listening as {client.Key}");
            await output.FlushAsync(cancellationToken);
            var limit = parse.GetValue(count);
            var received = 0;
            await using (client)
            {
                await using var signal = SignalClient.StartFromEnvironment();
                using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, signal.ShutdownToken);
                try
                {
                    await foreach (var message in client.Messages.ReadAllAsync(stop.Token))
                    {
                        // A browser chat's message (skywire-chat/1 JSON) prints as its text; its receipts and other JSON types are not messages.
                        var wire = ChatWireMessage.Decode(message.Data.Span);
                        if (wire is { Kind: ChatWireMessage.KindReceipt })
                        {
                            continue;
                        }

                        var text = wire is { Kind: ChatWireMessage.KindText, Id.Length: > 0, Text: { } t } ? t : Encoding.UTF8.GetString(message.Data.Span);
                        await output.WriteLineAsync($"{message.From} {Escape(text)}");
                        await output.FlushAsync(CancellationToken.None);
                        if (limit > 0 && ++received >= limit)
                        {
                            return 0;
                        }
                    }
                }
                catch (OperationCanceledException)
                {
                    return 0;
                }

                await parse.InvocationConfiguration.Error.WriteLineAsync("error: the connection to the messenger was lost");
                return ExitUnavailable;
            }
        });

        var web = ChatWebCommand.Create((parse, ct) => ConnectAsync(parse, messenger, messengerKey, key, loggerFactory, ct, reconnect: true), loggerFactory);
        return new Command("chat", "Chat with public keys through a messenger.") { messenger, messengerKey, key, send, listen, web };
    }

    private static async Task<(MessengerClient? Client, int Code)> ConnectAsync(
        ParseResult parse, Option<string> messenger, Option<string?> messengerKey, Option<string> key, ILoggerFactory loggerFactory, CancellationToken cancellationToken, bool reconnect = false)
    {
        var error = parse.InvocationConfiguration.Error;
        EndPoint endPoint;
        PubKey pinned;
        try
        {
            (endPoint, pinned) = ParseAddress(parse.GetValue(messenger)!, parse.GetValue(messengerKey));
        }
        catch (FormatException ex)
        {
            await error.WriteLineAsync("error: " + ex.Message);
            return (null, ExitUsage);
        }

        // A new key is written only once the messenger accepted it: a chat that cannot connect leaves no key file.
        // The client keeps using the key (reconnects), so it is not disposed here.
        var pending = Common.OpenKey(parse.GetValue(key)!, error);
        if (pending is null)
        {
            return (null, ExitFailure);
        }

        MessengerClient client;
        try
        {
            client = await MessengerClient.ConnectAsync(new MessengerClientOptions { EndPoint = endPoint, MessengerKey = pinned, Agent = "skywire-chat", Reconnect = reconnect }, pending.Key, loggerFactory, cancellationToken);
        }
        catch (MessengerException ex)
        {
            await error.WriteLineAsync("error: " + ex.Message);
            return (null, ExitCode(ex.Code));
        }

        if (!pending.Commit(error))
        {
            await client.DisposeAsync();
            return (null, ExitFailure);
        }

        return (client, 0);
    }

    /// <summary>Parses <c>host:port</c> (with <paramref name="key"/>) or <c>PUBKEY@host:port</c>.</summary>
    /// <exception cref="FormatException">Malformed address or key, keys that differ, or no key at all.</exception>
    public static (EndPoint EndPoint, PubKey Key) ParseAddress(string address, string? key)
    {
        ArgumentNullException.ThrowIfNull(address);
        var at = address.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0)
        {
            if (key is not null && !string.Equals(key, address[..at], StringComparison.OrdinalIgnoreCase))
            {
                throw new FormatException("the key in --messenger and --messenger-key differ");
            }

            key = address[..at];
            address = address[(at + 1)..];
        }

        if (key is null)
        {
            throw new FormatException("the messenger's key is required (--messenger-key PUBKEY or --messenger PUBKEY@host:port)");
        }

        if (!PubKey.TryParse(key, out var pub))
        {
            throw new FormatException($"'{key}' is not a public key (66 hex characters)");
        }

        return (ManagerAddress.ParseEndPoint(address), pub);
    }

    /// <summary>
    /// Client options from a <c>--messenger</c> / <c>--messenger-key</c> pair (for <c>skywire node</c>); null when no
    /// messenger is given.
    /// </summary>
    /// <exception cref="FormatException">Malformed address or key, or no key.</exception>
    public static MessengerClientOptions? ClientOptionsFrom(string? address, string? key)
    {
        if (address is null)
        {
            return key is null ? null : throw new FormatException("--messenger-key needs --messenger");
        }

        var (endPoint, pinned) = ParseAddress(address, key);
        return new MessengerClientOptions { EndPoint = endPoint, MessengerKey = pinned, Agent = "skywire-node" };
    }

    /// <summary>Makes a message one printable line: control characters become escapes.</summary>
    public static string Escape(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var sb = new StringBuilder(text.Length);
        foreach (var c in text)
        {
            switch (c)
            {
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\\': sb.Append("\\\\"); break;
                default:
                    if (char.IsControl(c))
                    {
                        sb.Append("\\u").Append(((int)c).ToString("x4"));
                    }
                    else
                    {
                        sb.Append(c);
                    }

                    break;
            }
        }

        return sb.ToString();
    }
}
