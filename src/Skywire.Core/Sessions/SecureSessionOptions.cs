namespace Skywire.Core.Sessions;

/// <summary>
/// Timers and limits of a <see cref="SecureSession"/>'s keys and handshakes (docs/protocol.md §6.1). The defaults
/// are WireGuard's where it has one (whitepaper §6.1; constants.go), RFC 9002's for the retry timer.
/// </summary>
public sealed record SecureSessionOptions
{
    /// <summary>The defaults.</summary>
    public static SecureSessionOptions Default { get; } = new();

    /// <summary>The initiator starts a new handshake once the current keys are this old (WireGuard RekeyAfterTime). Default 120 s.</summary>
    public TimeSpan RekeyAfterTime { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>
    /// Keys this old are dropped; when the current keys reach it (every rekey attempt failed) the session closes
    /// (WireGuard RejectAfterTime). Default 180 s.
    /// </summary>
    public TimeSpan RejectAfterTime { get; init; } = TimeSpan.FromSeconds(180);

    /// <summary>
    /// The initiator starts a new handshake once either direction has sealed this many packets with the current keys
    /// (it sees the responder's count in the counters it receives). Default 2^60 (WireGuard RekeyAfterMessages).
    /// </summary>
    public ulong RekeyAfterMessages { get; init; } = 1UL << 60;

    /// <summary>No packet is sealed with a counter at or above this (WireGuard RejectAfterMessages). Default 2^64 - 2^13 - 1.</summary>
    public ulong RejectAfterMessages { get; init; } = ulong.MaxValue - (1UL << 13);

    /// <summary>How long the keys before the current ones still open packets after the switch (in-flight packets). Default 15 s.</summary>
    public TimeSpan PreviousKeysLifetime { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Round-trip time assumed before the first handshake measured one (RFC 9002 kInitialRtt): the first retry comes
    /// after about three times this (RFC 9002's PTO). Default 333 ms.
    /// </summary>
    public TimeSpan InitialRtt { get; init; } = TimeSpan.FromMilliseconds(333);

    /// <summary>The retry interval doubles per attempt up to this (or twice the base interval on a slower path). Default 4 s.</summary>
    public TimeSpan MaxRetryInterval { get; init; } = TimeSpan.FromSeconds(4);

    /// <summary>Checks the values; returns every problem found.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (RekeyAfterTime <= TimeSpan.Zero || RejectAfterTime <= RekeyAfterTime)
        {
            errors.Add("RekeyAfterTime must be positive and below RejectAfterTime.");
        }

        if (RekeyAfterMessages == 0 || RejectAfterMessages <= RekeyAfterMessages)
        {
            errors.Add("RekeyAfterMessages must be positive and below RejectAfterMessages.");
        }

        if (PreviousKeysLifetime <= TimeSpan.Zero || InitialRtt <= TimeSpan.Zero || MaxRetryInterval <= TimeSpan.Zero)
        {
            errors.Add("PreviousKeysLifetime, InitialRtt and MaxRetryInterval must be positive.");
        }

        return errors;
    }
}
