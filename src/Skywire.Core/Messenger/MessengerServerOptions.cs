namespace Skywire.Core.Messenger;

/// <summary>Limits and timeouts of a messenger server (docs/messenger.md lists them with their reasons).</summary>
public sealed record MessengerServerOptions
{
    /// <summary>The defaults.</summary>
    public static MessengerServerOptions Default { get; } = new();

    /// <summary>Messages kept for one offline key (default 256).</summary>
    public int QueueMaxMessages { get; init; } = 256;

    /// <summary>Envelope bytes kept for one offline key (default 4 MiB).</summary>
    public long QueueMaxBytes { get; init; } = 4L * 1024 * 1024;

    /// <summary>How long a stored message waits before it is dropped (default 24 h).</summary>
    public TimeSpan QueueTtl { get; init; } = TimeSpan.FromHours(24);

    /// <summary>Drop notices kept for one offline sender (default 256; the oldest is forgotten first).</summary>
    public int QueueMaxNotices { get; init; } = 256;

    /// <summary>Envelope bytes stored over all keys (default 256 MiB).</summary>
    public long StoreMaxBytes { get; init; } = 256L * 1024 * 1024;

    /// <summary>Offline keys with a queue (default 100 000).</summary>
    public int StoreMaxKeys { get; init; } = 100_000;

    /// <summary>
    /// Messages one sender may have stored over all offline keys (default 4096): one key cannot take the store's key
    /// slots (<see cref="StoreMaxKeys"/>) by writing to many offline keys (issue 12.2).
    /// </summary>
    public int StoreMaxMessagesPerSender { get; init; } = 4096;

    /// <summary>Envelope bytes one sender may have stored over all offline keys (default 16 MiB, 1/16 of the store).</summary>
    public long StoreMaxBytesPerSender { get; init; } = 16L * 1024 * 1024;

    /// <summary>Sustained messages and requests per second per key (default 1000).</summary>
    public double RatePerSecond { get; init; } = 1000;

    /// <summary>Token bucket capacity per key (default 2000).</summary>
    public int RateBurst { get; init; } = 2000;

    /// <summary>Bytes queued toward one client beyond which messages to it are dropped as RecipientBusy (default 8 MiB).</summary>
    public long OutboundQueueLimit { get; init; } = 8L * 1024 * 1024;

    /// <summary>
    /// Frames queued toward one connection beyond which the messenger stops reading it (default 4096); it also stops
    /// at <see cref="OutboundQueueLimit"/> bytes. A client that pipelines requests (Ping, Query, Offer…) without reading
    /// the answers then backs up its own writes, and the messenger's memory for it stays bounded (issue 12.7).
    /// </summary>
    public int OutboundQueueFrames { get; init; } = 4096;

    /// <summary>Initial window of a relayed stream per direction, in record bytes (default 256 KiB).</summary>
    public int StreamWindow { get; init; } = 256 * 1024;

    /// <summary>Open relayed streams per connection (default 256).</summary>
    public int MaxStreamsPerConnection { get; init; } = 256;

    /// <summary>Connections at once (default 10 000; never more than the descriptor limit leaves room for). At the limit, the oldest connection that has not registered yet is closed to make room.</summary>
    public int MaxConnections { get; init; } = 10_000;

    /// <summary>Connections at once from one source address (default 256); unregistered ones make room first.</summary>
    public int MaxConnectionsPerSource { get; init; } = 256;

    /// <summary>Time to complete the Noise handshake and the hello (default 10 s).</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Authenticated connections one key may hold at once (default 8: a listening terminal, a sending one, a laptop and
    /// a phone). Each proves the key; each receives the key's messages. Beyond it a newcomer takes the place of a holder
    /// that fails a liveness check, or is refused with Conflict.
    /// </summary>
    public int MaxConnectionsPerKey { get; init; } = 8;

    /// <summary>How long the holders of a key have to answer a ping when a connection claims the key beyond <see cref="MaxConnectionsPerKey"/> (default 3 s).</summary>
    public TimeSpan LivenessTimeout { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>How long the target of a stream has to accept it (default 15 s).</summary>
    public TimeSpan StreamOpenTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>A connection that sends nothing for this long is closed; clients ping every 30 s (default 120 s).</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>How often expired queued messages are swept (default 30 s).</summary>
    public TimeSpan SweepInterval { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Directory entry lifetime when an offer gives none (default 5 min).</summary>
    public TimeSpan DirectoryDefaultTtl { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Longest directory entry lifetime (default 1 h).</summary>
    public TimeSpan DirectoryMaxTtl { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Directory entries over all keys (default 100 000).</summary>
    public int DirectoryMaxEntries { get; init; } = 100_000;

    /// <summary>Collects every invalid setting.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (QueueMaxMessages < 0) { errors.Add("QueueMaxMessages must be >= 0"); }
        if (QueueMaxBytes < 0) { errors.Add("QueueMaxBytes must be >= 0"); }
        if (QueueTtl <= TimeSpan.Zero) { errors.Add("QueueTtl must be positive"); }
        if (RatePerSecond <= 0) { errors.Add("RatePerSecond must be positive"); }
        if (RateBurst < 1) { errors.Add("RateBurst must be >= 1"); }
        if (StreamWindow < 64 * 1024) { errors.Add("StreamWindow must be >= 64 KiB"); }
        if (MaxStreamsPerConnection < 1) { errors.Add("MaxStreamsPerConnection must be >= 1"); }
        if (MaxConnections < 1) { errors.Add("MaxConnections must be >= 1"); }
        if (MaxConnectionsPerSource < 1) { errors.Add("MaxConnectionsPerSource must be >= 1"); }
        if (MaxConnectionsPerKey < 1) { errors.Add("MaxConnectionsPerKey must be >= 1"); }
        return errors;
    }
}
