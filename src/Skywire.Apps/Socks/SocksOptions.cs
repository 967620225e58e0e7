namespace Skywire.Apps.Socks;

/// <summary>Settings of the socks-server (exit) app.</summary>
public sealed record SocksServerOptions
{
    /// <summary>Defaults: anyone may connect, no passcode, 10 s header and connect timeouts, loopback targets refused.</summary>
    public static SocksServerOptions Default { get; } = new();

    /// <summary>
    /// Node keys (66 hex chars, compared case-insensitively) allowed to use this exit. Empty: any
    /// node that can reach the app may use it.
    /// </summary>
    public IReadOnlySet<string> AllowedClients { get; init; } = new HashSet<string>(StringComparer.OrdinalIgnoreCase);

    /// <summary>Passcode clients must send, or null for none. Never logged.</summary>
    public string? Passcode { get; init; }

    /// <summary>How long a new stream may take to deliver its tunnel header.</summary>
    public TimeSpan HeaderTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Upper bound on name resolution plus the outgoing TCP connect.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Allow destinations on the exit's own host (loopback and unspecified addresses). Off by
    /// default: otherwise any mesh peer could reach services bound to the exit's loopback.
    /// </summary>
    public bool AllowLoopbackTargets { get; init; }

    /// <inheritdoc />
    public override string ToString() =>
        $"SocksServerOptions {{ AllowedClients = {AllowedClients.Count}, Passcode = {(Passcode is null ? "none" : "set")}, " +
        $"HeaderTimeout = {HeaderTimeout}, ConnectTimeout = {ConnectTimeout}, AllowLoopbackTargets = {AllowLoopbackTargets} }}";
}

/// <summary>Settings of the socks-client (local SOCKS5 listener) app.</summary>
public sealed record SocksClientOptions
{
    /// <summary>Defaults: 127.0.0.1:1080, no authentication, 10 s handshake and 30 s reply timeouts.</summary>
    public static SocksClientOptions Default { get; } = new();

    /// <summary>Where the local SOCKS5 listener binds. Loopback by default.</summary>
    public System.Net.IPEndPoint Listen { get; init; } = new(System.Net.IPAddress.Loopback, 1080);

    /// <summary>Username local applications must give (RFC 1929), or null to offer no-auth.</summary>
    public string? Username { get; init; }

    /// <summary>Password for <see cref="Username"/>. Never logged.</summary>
    public string? Password { get; init; }

    /// <summary>Passcode sent to the socks-server, or null. Never logged.</summary>
    public string? Passcode { get; init; }

    /// <summary>How long a local application may take to complete the SOCKS5 handshake.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Upper bound on the mesh dial plus the server's answer (its connect timeout must be shorter).</summary>
    public TimeSpan ReplyTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// After each connection takes its mesh stream, a spare one is dialled for the next connection and kept this long
    /// (a burst of connections, as a browser opens them, then skips the dial: issue 19.1); zero keeps no spare. Keep it
    /// below the socks-server's header timeout (10 s by default), which closes a stream that waits longer.
    /// </summary>
    public TimeSpan SpareStreamLifetime { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Local connections held at once (default 1024, all from one source: local applications share 127.0.0.1), and
    /// never more than the descriptor limit leaves room for; at the cap the oldest one still in its SOCKS handshake is
    /// closed for a newcomer (issue 12.3, <see cref="Core.Channels.TcpConnectionHost"/>).
    /// </summary>
    public Core.Channels.ListenerLimits Connections { get; init; } = new() { MaxConnections = 1024, MaxConnectionsPerSource = 1024 };

    /// <summary>Collects every configuration error (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        errors.AddRange(Connections.Validate());
        if ((Username is null) != (Password is null))
        {
            errors.Add("--user and --password go together.");
        }

        if (Username is { Length: 0 or > 255 } || (Username is not null && System.Text.Encoding.UTF8.GetByteCount(Username) > 255))
        {
            errors.Add("The username must be 1 to 255 UTF-8 bytes.");
        }

        if (Password is { Length: 0 } || (Password is not null && System.Text.Encoding.UTF8.GetByteCount(Password) > 255))
        {
            errors.Add("The password must be 1 to 255 UTF-8 bytes.");
        }

        if (Passcode is not null && System.Text.Encoding.UTF8.GetByteCount(Passcode) > 255)
        {
            errors.Add("The passcode must be at most 255 UTF-8 bytes.");
        }

        if (HandshakeTimeout <= TimeSpan.Zero || ReplyTimeout <= TimeSpan.Zero)
        {
            errors.Add("Timeouts must be positive.");
        }

        if (SpareStreamLifetime < TimeSpan.Zero)
        {
            errors.Add("The spare stream lifetime must not be negative.");
        }

        return errors;
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"SocksClientOptions {{ Listen = {Listen}, Auth = {(Username is null ? "none" : "username/password")}, " +
        $"Passcode = {(Passcode is null ? "none" : "set")}, HandshakeTimeout = {HandshakeTimeout}, ReplyTimeout = {ReplyTimeout}, SpareStreamLifetime = {SpareStreamLifetime} }}";
}
