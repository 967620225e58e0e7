using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Control;
using Skywire.Core.Channels;
using Skywire.Core.Crypto;
using Skywire.Protocol.Control;

namespace Viscript.Daemon;

/// <summary>A mesh node on <c>GET /api/topology</c>.</summary>
public sealed record TopologyNode(string Key, string LinkAddress, bool Online, IReadOnlyList<string> Apps);

/// <summary>A link (as its ends report it) on <c>GET /api/topology</c>.</summary>
public sealed record TopologyLink(string From, string To, bool Up, double RttMs, double Loss);

/// <summary>A live route on <c>GET /api/topology</c>: the node keys from source to destination.</summary>
public sealed record TopologyRoute(string SessionId, string From, string To, IReadOnlyList<string> Path, int Reroutes);

/// <summary>
/// <c>GET /api/topology</c>: the mesh as the configured Skywire manager sees it. <paramref name="Configured"/> is false
/// when viscript has no <c>--manager</c>; <paramref name="Error"/> says why the manager could not be asked.
/// </summary>
public sealed record Topology(bool Configured, string? Manager, string? Error, DateTimeOffset? FetchedAt,
    IReadOnlyList<TopologyNode> Nodes, IReadOnlyList<TopologyLink> Links, IReadOnlyList<TopologyRoute> Routes);

/// <summary>
/// Asks the manager (as an admin cli client: <c>--manager PUBKEY@host:port --manager-key-file admin.key</c>) for nodes,
/// links and routes. Answers are cached for two seconds so several open pages cost one manager round trip.
/// </summary>
internal static class TopologySource
{
    private static readonly TimeSpan s_cacheFor = TimeSpan.FromSeconds(2);
    private static readonly SemaphoreSlim s_gate = new(1, 1);
    private static Topology? s_cached;

    public static async Task<Topology> GetAsync(DaemonHost daemon, CancellationToken cancellationToken)
    {
        var options = daemon.Options;
        if (string.IsNullOrWhiteSpace(options.Manager))
        {
            return new Topology(false, null, null, null, [], [], []);
        }
        var now = options.TimeProvider.GetUtcNow();
        await s_gate.WaitAsync(cancellationToken);
        try
        {
            if (s_cached is { FetchedAt: { } at } cached && cached.Manager == options.Manager && now - at < s_cacheFor)
            {
                return cached;
            }
            s_cached = await FetchAsync(options, now, cancellationToken);
            return s_cached;
        }
        finally
        {
            s_gate.Release();
        }
    }

    private static async Task<Topology> FetchAsync(DaemonOptions options, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var manager = options.Manager!;
        Topology Fail(string error) => new(true, manager, error, now, [], [], []);
        ManagerAddress address;
        try
        {
            address = ManagerAddress.Parse(manager, null);
        }
        catch (FormatException ex)
        {
            return Fail("bad --manager: " + ex.Message);
        }
        if (string.IsNullOrEmpty(options.ManagerKeyFile))
        {
            return Fail("no --manager-key-file: the manager answers topology queries only to its own or an admin key");
        }
        KeyPair key;
        try
        {
            key = KeyFile.Load(options.ManagerKeyFile);
        }
        catch (KeyFileException ex)
        {
            return Fail(ex.Message);
        }
        using (key)
        {
            try
            {
                var (connection, _) = await ControlClient.ConnectAsync(address, key, "cli", null,
                    (_, _, _) => throw new ControlException(ControlErrorCode.Forbidden, "viscript serves no manager requests"),
                    NullLogger.Instance, TimeSpan.FromSeconds(5), cancellationToken);
                await using (connection)
                {
                    var ctx = ControlJsonContext.Default;
                    var nodes = await connection.RequestAsync((byte)ControlOpcode.ListNodes, new OkMessage(), ctx.OkMessage, ctx.NodeListMessage, cancellationToken);
                    var links = await connection.RequestAsync((byte)ControlOpcode.ListLinks, new OkMessage(), ctx.OkMessage, ctx.LinkListMessage, cancellationToken);
                    var routes = await connection.RequestAsync((byte)ControlOpcode.ListRoutes, new OkMessage(), ctx.OkMessage, ctx.RouteListMessage, cancellationToken);
                    return new Topology(true, manager, null, now,
                        [.. nodes.Nodes.Select(n => new TopologyNode(n.Key, n.LinkAddress, n.Online, n.Apps))],
                        [.. links.Links.Select(l => new TopologyLink(l.From, l.To, l.Up, l.RttMicros / 1000.0, l.Loss))],
                        [.. routes.Routes.Select(r => new TopologyRoute(r.SessionId.ToString("x16", System.Globalization.CultureInfo.InvariantCulture), r.From, r.To, r.Path, r.Reroutes))]);
                }
            }
            catch (ControlException ex)
            {
                return Fail(ex.Message);
            }
            catch (IOException ex)
            {
                return Fail("manager connection failed: " + ex.Message);
            }
        }
    }
}
