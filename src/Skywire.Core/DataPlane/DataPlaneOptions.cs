using Skywire.Core.Crypto;
using Skywire.Protocol;
using Skywire.Protocol.Links;

namespace Skywire.Core.DataPlane;

/// <summary>Options of a node's data plane. Defaults suit a LAN or the Internet.</summary>
public sealed record DataPlaneOptions
{
    /// <summary>The defaults.</summary>
    public static DataPlaneOptions Default { get; } = new();

    /// <summary>Largest UDP payload sent (default 1420, see <see cref="LinkLimits.DefaultMaxUdpPayload"/>; at least 1232).</summary>
    public int MaxUdpPayload { get; init; } = LinkLimits.DefaultMaxUdpPayload;

    /// <summary>AEAD to offer first; null: AES-256-GCM when the CPU supports it, else ChaCha20-Poly1305.</summary>
    public AeadAlgorithmId? Aead { get; init; }

    /// <summary>How long a link or session handshake may take before it fails.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Interval between link handshake attempts (each attempt is a fresh handshake).</summary>
    public TimeSpan HandshakeRetryInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Interval between RTT/loss probes on an up link (probes double as keepalives).</summary>
    public TimeSpan ProbeInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>A probe without a reply after this long counts as lost.</summary>
    public TimeSpan ProbeTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How many recent probes the loss figure covers (1..64).</summary>
    public int ProbeWindow { get; init; } = 20;

    /// <summary>A link with no authenticated packet for this long is declared down.</summary>
    public TimeSpan DeadAfter { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long a link the peer opened is remembered (down, without keys) after it was lost: the node reports it
    /// meanwhile, so that a manager that restarted in the meantime learns the link and has it reopened even when the
    /// peer that opened it restarted too (and forgot it). A link that never came up is forgotten at once.
    /// </summary>
    public TimeSpan RememberLostLinks { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>The link initiator runs a fresh handshake when the keys are this old (forward secrecy; WireGuard uses 2 minutes).</summary>
    public TimeSpan RekeyAfter { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// Handshake inits per second (with a valid mac1) above which the node is "under load" and
    /// answers inits that lack a valid mac2 with a cookie instead of doing any DH. 0: always demand cookies.
    /// </summary>
    public int HandshakesPerSecondBeforeCookies { get; init; } = 64;

    /// <summary>Period of the maintenance loop (retries, probes, expiry).</summary>
    public TimeSpan TickInterval { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// Most links the node keeps (default 1024). A link needs only a valid handshake, which anyone with a key pair
    /// can make, so strangers' links are bounded: beyond the cap a new one takes the place of an unconfirmed, down or
    /// idle link of another stranger, or is refused (<see cref="DataPlaneStatistics.TableFull"/>). Links this node
    /// opened (the manager asked for them) and links that carry routes or sessions are never evicted, and a link this
    /// node opens is never refused. Each link costs a few KiB.
    /// </summary>
    public int MaxLinks { get; init; } = 1024;

    /// <summary>Decides whether a peer that completed a handshake with us may have a link; null: any authenticated peer.</summary>
    public Func<PubKey, bool>? AcceptInboundLink { get; init; }

    /// <summary>
    /// Use the Linux UDP offloads when the kernel has them (default true): GSO sends a batch of equal-size
    /// datagrams to one peer in one system call, GRO receives a batch in one. Nothing changes on the wire;
    /// false (or another OS) sends and receives one datagram per call.
    /// </summary>
    public bool UdpOffload { get; init; } = true;

    /// <summary>SO_RCVBUF / SO_SNDBUF request in bytes (the kernel may cap it).</summary>
    public int SocketBufferBytes { get; init; } = 4 * 1024 * 1024;

    /// <summary>Checks the options; throws <see cref="ArgumentException"/> listing every problem.</summary>
    public void Validate()
    {
        var errors = new List<string>();
        if (MaxUdpPayload is < LinkLimits.MinMaxUdpPayload or > 65507)
        {
            errors.Add($"MaxUdpPayload must be within {LinkLimits.MinMaxUdpPayload}..65507");
        }

        if (Aead is { } a && !AeadKey.IsSupported(a))
        {
            errors.Add($"AEAD {a} is not supported on this machine");
        }

        if (HandshakeTimeout <= TimeSpan.Zero) { errors.Add("HandshakeTimeout must be positive"); }
        if (HandshakeRetryInterval <= TimeSpan.Zero) { errors.Add("HandshakeRetryInterval must be positive"); }
        if (ProbeInterval <= TimeSpan.Zero) { errors.Add("ProbeInterval must be positive"); }
        if (ProbeTimeout <= TimeSpan.Zero) { errors.Add("ProbeTimeout must be positive"); }
        if (ProbeWindow is < 1 or > 64) { errors.Add("ProbeWindow must be within 1..64"); }
        if (DeadAfter <= ProbeInterval) { errors.Add("DeadAfter must be longer than ProbeInterval"); }
        if (RememberLostLinks < TimeSpan.Zero) { errors.Add("RememberLostLinks must not be negative"); }
        if (TickInterval <= TimeSpan.Zero) { errors.Add("TickInterval must be positive"); }
        if (RekeyAfter <= TimeSpan.Zero) { errors.Add("RekeyAfter must be positive"); }
        if (HandshakesPerSecondBeforeCookies < 0) { errors.Add("HandshakesPerSecondBeforeCookies must not be negative"); }
        if (MaxLinks < 1) { errors.Add("MaxLinks must be at least 1"); }
        if (errors.Count > 0)
        {
            throw new ArgumentException("invalid data plane options: " + string.Join("; ", errors));
        }
    }
}
