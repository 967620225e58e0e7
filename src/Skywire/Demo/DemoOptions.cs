namespace Skywire.Demo;

/// <summary>Settings of <c>skywire demo</c>.</summary>
internal sealed record DemoOptions
{
    /// <summary>Fetch a page through the proxy, verify it, stop everything and exit 0 or 1.</summary>
    public bool Check { get; init; }

    /// <summary>Folder for keys, tokens, the generated viscript config and logs; null = a default (see <see cref="DemoRunner"/>).</summary>
    public string? Directory { get; init; }

    /// <summary>Nodes in the chain (at least 3 so the route has at least 2 hops).</summary>
    public int Nodes { get; init; } = 4;

    /// <summary>Upper bound for each bring-up step.</summary>
    public TimeSpan StepTimeout { get; init; } = TimeSpan.FromSeconds(90);

    /// <summary>viscript.dll (or an executable) to run instead of the one found beside skywire.</summary>
    public string? Viscript { get; init; }

    /// <summary>Port of the local SOCKS5 proxy (0 picks a free one).</summary>
    public int SocksPort { get; init; }

    /// <summary>Meter the routes: the manager keeps a ledger in the demo folder and node A pays (docs/metering.md "Live path").</summary>
    public bool Metering { get; init; }

    /// <summary>
    /// Add the VPN: a vpn-server beside the last node, a vpn-client beside the first with its tunnel in a network
    /// namespace of its own; ping and fetch a page through the tunnel (needs root, ping and curl).
    /// </summary>
    public bool Vpn { get; init; }

    /// <summary>Bytes fetched and verified through the proxy by --check.</summary>
    public int CheckBytes { get; init; } = 1 << 20;
}
