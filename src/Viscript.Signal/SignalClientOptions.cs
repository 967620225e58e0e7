using System.Globalization;

namespace Viscript.Signal;

/// <summary>Options of a <see cref="SignalClient"/>. <see cref="FromEnvironment"/> reads the original env vars.</summary>
public sealed record SignalClientOptions
{
    /// <summary>Env var that turns the client on: any value except case-insensitive <c>false</c>, even empty.</summary>
    public const string EnabledVariable = "SIGNAL_CLIENT";

    /// <summary>Env var with the server's <c>host:port</c>.</summary>
    public const string AddressVariable = "SIGNAL_SERVER_ADDRESS";

    /// <summary>Env var with the decimal id to register (invalid values keep the default).</summary>
    public const string IdVariable = "SIGNAL_CLIENT_ID";

    /// <summary>Env var with the token for a server on another host (our extension).</summary>
    public const string TokenVariable = "SIGNAL_TOKEN";

    /// <summary>Server address, <c>host:port</c> (IPv6 literals in brackets).</summary>
    public string ServerAddress { get; init; } = "localhost:7999";

    /// <summary>Id to register; replaced by the id the server's REG reply names.</summary>
    public ulong ClientId { get; init; } = 1;

    /// <summary>Token presented in REG (needed only by a server that is reached from another host).</summary>
    public string? Token { get; init; }

    /// <summary>Interval of keepalive PING frames (the Go server drops a connection silent for 90 s).</summary>
    public TimeSpan PingInterval { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>A server silent for this long (no PONG, no request) is considered gone and the client reconnects.</summary>
    public TimeSpan ReadTimeout { get; init; } = TimeSpan.FromSeconds(150);

    /// <summary>First delay before reconnecting; doubles after each failure up to <see cref="MaxReconnectDelay"/>.</summary>
    public TimeSpan InitialReconnectDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Cap of the reconnect backoff (the original waits a fixed 30 s).</summary>
    public TimeSpan MaxReconnectDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long to wait for a TCP connect.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// After SHUTDOWN, when the program handles neither <see cref="SignalClient.ShutdownRequested"/> nor
    /// <see cref="SignalClient.ShutdownToken"/>, the process exits with code 0 after this delay.
    /// </summary>
    public TimeSpan ShutdownGracePeriod { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Whether an unhandled SHUTDOWN ends the process (see <see cref="ShutdownGracePeriod"/>).</summary>
    public bool ExitOnUnhandledShutdown { get; init; } = true;

    /// <summary>Announce our extensions in REG (<c>Ext</c>, <c>Pid</c>); a Go server ignores them.</summary>
    public bool UseExtensions { get; init; } = true;

    /// <summary>Largest frame body accepted from the server.</summary>
    public int MaxFrameSize { get; init; } = 1024 * 1024;

    /// <summary>Clock for pings, backoff and timeouts.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Receives the client's log lines (connect failures, ignored frames). BCL-only, so no ILogger.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>Default options.</summary>
    public static SignalClientOptions Default { get; } = new();

    /// <summary>
    /// Reads <c>SIGNAL_CLIENT</c>, <c>SIGNAL_SERVER_ADDRESS</c>, <c>SIGNAL_CLIENT_ID</c> and <c>SIGNAL_TOKEN</c>.
    /// Returns null when the client is not enabled.
    /// </summary>
    /// <param name="getVariable">Variable lookup (defaults to the process environment).</param>
    public static SignalClientOptions? FromEnvironment(Func<string, string?>? getVariable = null)
    {
        getVariable ??= Environment.GetEnvironmentVariable;
        var enabled = getVariable(EnabledVariable);
        if (enabled is null || string.Equals(enabled, "false", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        var options = new SignalClientOptions();
        if (getVariable(AddressVariable) is { Length: > 0 } address)
        {
            options = options with { ServerAddress = address };
        }

        if (ulong.TryParse(getVariable(IdVariable), NumberStyles.None, CultureInfo.InvariantCulture, out var id))
        {
            options = options with { ClientId = id };
        }

        if (getVariable(TokenVariable) is { Length: > 0 } token)
        {
            options = options with { Token = token };
        }

        return options;
    }

    /// <summary>Splits <see cref="ServerAddress"/> into host and port.</summary>
    /// <exception cref="FormatException">Not <c>host:port</c>.</exception>
    public (string Host, int Port) ParseServerAddress()
    {
        var text = ServerAddress.Trim();
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            throw new FormatException($"signal server address '{ServerAddress}' is not host:port");
        }

        var host = text[..colon];
        if (host.StartsWith('[') && host.EndsWith(']'))
        {
            host = host[1..^1];
        }

        return (host, port);
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"SignalClientOptions {{ ServerAddress = {ServerAddress}, ClientId = {ClientId}, Token = {(Token is null ? "none" : "***")} }}";
}
