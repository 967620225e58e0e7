using System.CommandLine;
using System.Net;
using Microsoft.Extensions.Logging;
using Skywire.Core.AppApi;
using Skywire.Apps.Socks;

namespace Skywire.Commands;

/// <summary>
/// The <c>skywire app socks-server</c> and <c>skywire app socks-client</c> commands. The executable
/// adds them under <c>app</c>: <c>foreach (var c in SocksCommands.Create(() => Common.Logging())) app.Subcommands.Add(c);</c>
/// </summary>
internal static class SocksCommands
{
    /// <summary>Exit codes, the same as the other <c>skywire</c> commands.</summary>
    private const int Ok = 0, Failure = 1, Usage = 2;

    /// <summary>Where socks-client listens unless told otherwise (the usual SOCKS port, loopback only).</summary>
    private const string DefaultListen = "127.0.0.1:1080";

    /// <summary>Builds both commands; <paramref name="logging"/> makes the logger factory when a command runs (stderr).</summary>
    public static IReadOnlyList<Command> Create(Func<ILoggerFactory> logging)
    {
        ArgumentNullException.ThrowIfNull(logging);
        return [Server(logging), Client(logging)];
    }

    private static (Option<string> NodeApps, Option<string> TokenFile, Option<string> Name) Common(string defaultName)
    {
        var nodeApps = new Option<string>("--node-apps") { Description = "The node's app API address (ip:port on loopback).", Required = true };
        var tokenFile = new Option<string>("--token-file") { Description = "The node's app token file (re-read while waiting: the app waits for its node to start or come back).", Required = true };
        var name = new Option<string>("--name") { Description = "This app's name in the app tracker.", DefaultValueFactory = _ => defaultName };
        return (nodeApps, tokenFile, name);
    }

    private static Command Server(Func<ILoggerFactory> logging)
    {
        var (nodeApps, tokenFile, name) = Common("socks-server");
        var allow = new Option<string[]>("--allow")
        {
            Description = "Node key (66 hex) allowed to use this exit; repeat for more. Default: any node.",
            AllowMultipleArgumentsPerToken = true,
        };
        var passcode = new Option<string?>("--passcode") { Description = $"Passcode clients must send (see --passcode of socks-client). Visible to local users in ps: prefer env {PasscodeVariable}." };
        var allowLoopback = new Option<bool>("--allow-loopback") { Description = "Allow destinations on this host's loopback and link-local addresses, e.g. 169.254.169.254 (off: 0x02 not allowed)." };
        var connectTimeout = new Option<double>("--connect-timeout")
        {
            Description = "Seconds for name lookup plus TCP connect before answering 0x06.",
            DefaultValueFactory = _ => 10,
        };
        connectTimeout.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<double>() is <= 0 or > 300)
            {
                result.AddError("--connect-timeout must be more than 0 and at most 300 seconds");
            }
        });
        var command = new Command("socks-server", "SOCKS5 exit: serves each incoming mesh stream as one proxied TCP connection or one UDP association.")
        {
            nodeApps, tokenFile, name, allow, passcode, allowLoopback, connectTimeout,
        };
        command.Validators.Add(result =>
        {
            foreach (var key in result.GetValue(allow) ?? [])
            {
                if (key.Length != 66 || !key.All(Uri.IsHexDigit))
                {
                    result.AddError($"--allow '{key}' is not a node key (66 hex characters)");
                }
            }

            if (Secret(result.GetValue(passcode), PasscodeVariable) is { } p && System.Text.Encoding.UTF8.GetByteCount(p) is 0 or > 255)
            {
                result.AddError("--passcode must be 1 to 255 bytes");
            }
        });
        command.SetAction(async (parse, cancellationToken) =>
        {
            var binding = Bind(parse.GetValue(nodeApps)!, parse.GetValue(tokenFile)!, parse.GetValue(name) ?? SocksApps.ServerType);
            if (binding is null)
            {
                return Usage;
            }

            var options = SocksServerOptions.Default with
            {
                AllowedClients = new HashSet<string>(parse.GetValue(allow) ?? [], StringComparer.OrdinalIgnoreCase),
                Passcode = Secret(parse.GetValue(passcode), PasscodeVariable),
                AllowLoopbackTargets = parse.GetValue(allowLoopback),
                ConnectTimeout = TimeSpan.FromSeconds(parse.GetValue(connectTimeout)),
            };
            using var loggers = logging();
            // A signal client (inert unless viscript launched us), so viscript can ping, ru and sd this app.
            await using var signal = Viscript.Signal.SignalClient.StartFromEnvironment();
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, signal.ShutdownToken);
            return await RunAsync(() => SocksApps.RunServerAsync(binding, options, loggers.CreateLogger("socks-server"),
                ready => Console.Error.WriteLine($"socks-server ready as {ready}"), stop.Token));
        });
        return command;
    }

    /// <summary>Environment variable for --password (the environment of a process is readable by its user only; its arguments, by every local user).</summary>
    internal const string PasswordVariable = "SKYWIRE_SOCKS_PASSWORD";

    /// <summary>Environment variable for --passcode (socks-server and socks-client).</summary>
    internal const string PasscodeVariable = "SKYWIRE_SOCKS_PASSCODE";

    /// <summary>The option's value, else the environment variable's (empty counts as unset).</summary>
    private static string? Secret(string? given, string variable) =>
        given ?? (Environment.GetEnvironmentVariable(variable) is { Length: > 0 } value ? value : null);

    private static Command Client(Func<ILoggerFactory> logging)
    {
        var (nodeApps, tokenFile, name) = Common("socks-client");
        var server = new Option<string?>("--server") { Description = "The exit as NODEKEY/APPNAME. Default: the first socks-server in the app tracker." };
        var listen = new Option<string>("--listen")
        {
            Description = "Local SOCKS5 listener (ip:port). A non-loopback address needs --user and --password.",
            DefaultValueFactory = _ => DefaultListen,
        };
        var user = new Option<string?>("--user") { Description = "Username local applications must give (RFC 1929)." };
        var password = new Option<string?>("--password") { Description = $"Password for --user. Visible to local users in ps: prefer env {PasswordVariable}." };
        var passcode = new Option<string?>("--passcode") { Description = $"Passcode to send to the socks-server. Visible to local users in ps: prefer env {PasscodeVariable}." };
        var command = new Command("socks-client", "Local SOCKS5 server (RFC 1928: CONNECT and UDP ASSOCIATE) that carries each connection or UDP association as its own mesh stream to a socks-server.")
        {
            nodeApps, tokenFile, name, server, listen, user, password, passcode,
        };
        command.Validators.Add(result =>
        {
            // A command validator sees no default values, so fall back to the default here.
            var listenText = result.GetValue(listen) is { Length: > 0 } given ? given : DefaultListen;
            if (!IPEndPoint.TryParse(listenText, out var endPoint))
            {
                result.AddError($"--listen '{listenText}' is not ip:port");
            }
            else if (!IPAddress.IsLoopback(endPoint.Address) && result.GetValue(user) is null)
            {
                result.AddError("--listen on a non-loopback address needs --user and --password");
            }

            if (result.GetValue(server) is { } s)
            {
                try
                {
                    SocksApps.ParseTarget(s);
                }
                catch (FormatException ex)
                {
                    result.AddError("--server " + ex.Message);
                }
            }

            var options = SocksClientOptions.Default with
            {
                Username = result.GetValue(user),
                Password = Secret(result.GetValue(password), PasswordVariable),
                Passcode = Secret(result.GetValue(passcode), PasscodeVariable),
            };
            foreach (var error in options.Validate())
            {
                result.AddError(error);
            }
        });
        command.SetAction(async (parse, cancellationToken) =>
        {
            var binding = Bind(parse.GetValue(nodeApps)!, parse.GetValue(tokenFile)!, parse.GetValue(name) ?? SocksApps.ClientType);
            if (binding is null)
            {
                return Usage;
            }

            var options = SocksClientOptions.Default with
            {
                Listen = IPEndPoint.Parse(parse.GetValue(listen) ?? DefaultListen),
                Username = parse.GetValue(user),
                Password = Secret(parse.GetValue(password), PasswordVariable),
                Passcode = Secret(parse.GetValue(passcode), PasscodeVariable),
            };
            using var loggers = logging();
            await using var signal = Viscript.Signal.SignalClient.StartFromEnvironment();
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, signal.ShutdownToken);
            return await RunAsync(() => SocksApps.RunClientAsync(binding, parse.GetValue(server), options, loggers.CreateLogger("socks-client"),
                (endPoint, exit) => Console.Error.WriteLine($"socks-client listening on {endPoint}, exit {exit}"), stop.Token));
        });
        return command;
    }

    private static SocksAppBinding? Bind(string nodeApps, string tokenFile, string name)
    {
        if (!IPEndPoint.TryParse(nodeApps, out var endPoint))
        {
            Console.Error.WriteLine($"error: --node-apps '{nodeApps}' is not ip:port");
            return null;
        }

        // Waits for the node (started after this app, or restarting), re-reading its token file; says once what it waits for.
        var said = new HashSet<string>(StringComparer.Ordinal);
        return new SocksAppBinding(endPoint, null, name)
        {
            TokenFile = tokenFile,
            OnWaiting = what =>
            {
                lock (said)
                {
                    if (said.Add(what.Split(':')[0]))
                    {
                        Console.Error.WriteLine(what);
                    }
                }
            },
        };
    }

    private static async Task<int> RunAsync(Func<Task> run)
    {
        try
        {
            await run();
            return Ok;
        }
        catch (OperationCanceledException)
        {
            return Ok;
        }
        catch (Skywire.Core.Channels.ListenerBindException ex)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return Failure;
        }
        catch (AppApiException ex)
        {
            Console.Error.WriteLine($"error: {ex.Message} ({ex.Code})");
            return Failure;
        }
        catch (System.Net.Sockets.SocketException ex)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return Failure;
        }
        catch (IOException ex)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return Failure;
        }
    }
}
