using System.Net;

namespace Skywire.Core.Sdk;

/// <summary>
/// How an app reaches its node when the two may start in any order or the node restarts
/// (<see cref="SkywireApp.ConnectAsync(SkywireAppOptions, CancellationToken)"/>): the app waits for the node with
/// capped backoff and jitter, re-reads the token file at each attempt (a restarted node writes a new token), and
/// re-registers its name when the node comes back.
/// </summary>
public sealed record SkywireAppOptions
{
    /// <summary>The node's app API address.</summary>
    public required IPEndPoint NodeApps { get; init; }

    /// <summary>The app token; null: read <see cref="TokenFile"/> at each attempt.</summary>
    public string? Token { get; init; }

    /// <summary>The node's token file (read at each attempt; missing or stale while the node starts is retried).</summary>
    public string? TokenFile { get; init; }

    /// <summary>Smallest delay between attempts (default 250 ms).</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Largest delay between attempts (default 5 s).</summary>
    public TimeSpan MaxRetryDelay { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Called before each wait with why the node could not be used (for a "waiting for the node" line).</summary>
    public Action<Exception>? OnRetry { get; init; }

    /// <summary>Clock of the waits.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    internal string ReadToken() => Token ?? SkywireApp.ReadTokenFile(TokenFile ?? throw new InvalidOperationException("give Token or TokenFile"));
}
