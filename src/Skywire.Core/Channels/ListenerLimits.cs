namespace Skywire.Core.Channels;

/// <summary>
/// How many connections one TCP listener holds (<see cref="TcpConnectionHost"/>): in all and per source address.
/// At a limit, the oldest connection that has not authenticated yet (no valid hello) is closed to make room; when
/// every connection is authenticated, the new one is closed. The listener never holds more connections than the
/// process's descriptor limit leaves room for.
/// </summary>
public sealed record ListenerLimits
{
    /// <summary>The defaults (1024 connections, 256 per source address).</summary>
    public static ListenerLimits Default { get; } = new();

    /// <summary>Connections at once (default 1024).</summary>
    public int MaxConnections { get; init; } = 1024;

    /// <summary>Connections at once from one source address (default 256; a loopback listener sees one source).</summary>
    public int MaxConnectionsPerSource { get; init; } = 256;

    /// <summary>First wait after an accept failed (descriptor or memory exhaustion); grows with jitter (default 10 ms).</summary>
    public TimeSpan AcceptRetryDelay { get; init; } = TimeSpan.FromMilliseconds(10);

    /// <summary>Longest wait between accept attempts that fail (default 1 s).</summary>
    public TimeSpan MaxAcceptRetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Collects every invalid setting.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (MaxConnections < 1) { errors.Add("MaxConnections must be >= 1"); }
        if (MaxConnectionsPerSource < 1) { errors.Add("MaxConnectionsPerSource must be >= 1"); }
        if (AcceptRetryDelay <= TimeSpan.Zero) { errors.Add("AcceptRetryDelay must be positive"); }
        if (MaxAcceptRetryDelay < AcceptRetryDelay) { errors.Add("MaxAcceptRetryDelay must be >= AcceptRetryDelay"); }
        return errors;
    }
}
