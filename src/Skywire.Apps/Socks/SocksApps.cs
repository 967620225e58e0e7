using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.AppApi;
using Skywire.Core.Sdk;
using Skywire.Protocol.AppApi;

namespace Skywire.Apps.Socks;

/// <summary>Where an app finds its node: the app API address and token (docs/protocol.md §7).</summary>
/// <param name="NodeApps">The node's app API address (loopback).</param>
/// <param name="Token">The node's app token (one attempt to reach the node); null: <see cref="TokenFile"/>. Never logged.</param>
/// <param name="Name">This app's name in the tracker.</param>
public sealed record SocksAppBinding(IPEndPoint NodeApps, string? Token, string Name)
{
    /// <summary>
    /// The node's token file: the app waits for its node (it may start after the app, or restart), re-reading the
    /// token, and registers again when the node is back (<see cref="SkywireAppOptions"/>); the socks-client also waits
    /// for a socks-server to appear in the tracker.
    /// </summary>
    public string? TokenFile { get; init; }

    /// <summary>Told what the app is waiting for (the node, a socks-server), before each wait (with <see cref="TokenFile"/>).</summary>
    public Action<string>? OnWaiting { get; init; }

    internal Task<SkywireApp> ConnectAsync(CancellationToken cancellationToken) => TokenFile is { } file
        ? SkywireApp.ConnectAsync(new SkywireAppOptions { NodeApps = NodeApps, TokenFile = file, OnRetry = ex => OnWaiting?.Invoke($"waiting for the node at {NodeApps}: {ex.Message}") }, cancellationToken)
        : SkywireApp.ConnectAsync(NodeApps, Token ?? throw new InvalidOperationException("give Token or TokenFile"), cancellationToken);

    /// <inheritdoc />
    public override string ToString() => $"SocksAppBinding {{ NodeApps = {NodeApps}, Name = {Name} }}";
}

/// <summary>The socks-server and socks-client apps bound to a node through the app API SDK.</summary>
public static partial class SocksApps
{
    /// <summary>Tracker type of the exit app.</summary>
    public const string ServerType = "socks-server";

    /// <summary>Tracker type of the entry app.</summary>
    public const string ClientType = "socks-client";

    /// <summary>
    /// Registers as a socks-server and serves every incoming stream until cancelled or the node goes away.
    /// <paramref name="onReady"/> gets <c>NODEKEY/NAME</c> once registered.
    /// </summary>
    /// <exception cref="AppApiException">The node refused or could not be reached.</exception>
    public static async Task RunServerAsync(SocksAppBinding binding, SocksServerOptions options, ILogger? logger = null,
        Action<string>? onReady = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(binding);
        logger ??= NullLogger.Instance;
        await using var app = await binding.ConnectAsync(cancellationToken);
        await app.RegisterAsync(binding.Name, ServerType, cancellationToken);
        Log.Registered(logger, ServerType, app.NodeKey, binding.Name);
        onReady?.Invoke($"{app.NodeKey}/{binding.Name}");

        var server = new SocksServer(options, logger);
        await app.ServeStreamsAsync((stream, stopping) => server.HandleStreamAsync(stream, stream.RemoteNode, stopping), cancellationToken: cancellationToken);
    }

    /// <summary>
    /// Registers as a socks-client, picks the exit (<paramref name="server"/> as <c>NODEKEY/APPNAME</c>,
    /// or the first socks-server in the tracker on another node), and serves the local SOCKS5 listener
    /// until cancelled. <paramref name="onReady"/> gets the bound endpoint and the chosen exit.
    /// </summary>
    /// <exception cref="AppApiException">The node refused, or no socks-server is registered.</exception>
    /// <exception cref="FormatException"><paramref name="server"/> is not NODEKEY/APPNAME.</exception>
    public static async Task RunClientAsync(SocksAppBinding binding, string? server, SocksClientOptions options, ILogger? logger = null,
        Action<IPEndPoint, string>? onReady = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(binding);
        logger ??= NullLogger.Instance;
        var target = server is null ? ((string Node, string App)?)null : ParseTarget(server);

        // The local listener binds first: a port in use is reported (naming the listener and address) before
        // anything registers with the node. Connections accepted meanwhile wait for the exit to be chosen.
        SkywireApp? app = null;
        (string Node, string App)? exitTarget = null;
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var client = new SocksClient(options, async ct =>
        {
            await ready.Task.WaitAsync(ct);
            var (exitNode, exitApp) = exitTarget!.Value;
            return await app!.DialAsync(exitNode, exitApp, ct);
        }, logger);
        var endPoint = Core.Channels.ListenerBindException.Bind("SOCKS listener (TCP, --listen)", options.Listen, client.Start);

        await using var connected = await binding.ConnectAsync(cancellationToken);
        app = connected;
        await app.RegisterAsync(binding.Name, ClientType, cancellationToken);
        Log.Registered(logger, ClientType, app.NodeKey, binding.Name);
        var (node, exit) = target ?? await PickServerAsync(app, binding, cancellationToken);
        exitTarget = (node, exit);
        ready.SetResult();
        Log.ExitChosen(logger, node, exit);
        onReady?.Invoke(endPoint, $"{node}/{exit}");
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    /// <summary>Splits <c>NODEKEY/APPNAME</c>.</summary>
    public static (string Node, string App) ParseTarget(string target)
    {
        ArgumentNullException.ThrowIfNull(target);
        var slash = target.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0 || slash == target.Length - 1 || target.IndexOf('/', slash + 1) >= 0)
        {
            throw new FormatException($"'{target}' is not NODEKEY/APPNAME");
        }

        return (target[..slash], target[(slash + 1)..]);
    }

    /// <summary>
    /// The first socks-server on another node in the tracker. A binding that waits for its node (<see cref="SocksAppBinding.TokenFile"/>)
    /// also waits for a server to register (a mesh started all at once); otherwise none is an error.
    /// </summary>
    private static async Task<(string Node, string App)> PickServerAsync(SkywireApp app, SocksAppBinding binding, CancellationToken cancellationToken)
    {
        var backoff = new Core.Channels.Backoff(TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(5));
        while (true)
        {
            IReadOnlyList<Protocol.Control.AppInfo> servers;
            try
            {
                servers = await app.ListAppsAsync("type", ServerType, cancellationToken);
            }
            catch (AppApiException ex) when (binding.TokenFile is not null && ex.Code == AppApiErrorCode.Unreachable)
            {
                servers = []; // the node has no manager yet
            }

            // Dialling an app on one's own node is not supported by the app API; order for a stable choice.
            var pick = servers.Where(s => !string.Equals(s.Node, app.NodeKey, StringComparison.OrdinalIgnoreCase))
                .OrderBy(s => s.Node, StringComparer.Ordinal).ThenBy(s => s.Name, StringComparer.Ordinal).FirstOrDefault();
            if (pick is not null)
            {
                return (pick.Node, pick.Name);
            }

            if (binding.TokenFile is null)
            {
                throw new AppApiException(AppApiErrorCode.NotFound, "no socks-server on another node is registered in the app tracker; give --server NODEKEY/APPNAME");
            }

            if (backoff.Attempts == 0)
            {
                binding.OnWaiting?.Invoke("waiting for a socks-server on another node to register in the app tracker");
            }

            await backoff.DelayAsync(TimeProvider.System, cancellationToken);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 6140, Level = LogLevel.Information, Message = "{Type} registered as {Node}/{Name}")]
        public static partial void Registered(ILogger logger, string type, string node, string name);

        [LoggerMessage(EventId = 6141, Level = LogLevel.Information, Message = "socks-client: exit is {Node}/{App}")]
        public static partial void ExitChosen(ILogger logger, string node, string app);
    }
}
