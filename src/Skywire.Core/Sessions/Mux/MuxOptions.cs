
namespace Skywire.Core.Sessions.Mux;

/// <summary>Settings of a <see cref="StreamMultiplexer"/>. Both ends may use different values.</summary>
public sealed record MuxOptions
{
    /// <summary>The defaults.</summary>
    public static MuxOptions Default { get; } = new();

    /// <summary>Bytes of one stream the peer may send beyond what the application has read (per-stream window). Default 1 MiB.</summary>
    public int StreamReceiveWindow { get; init; } = 1 << 20;

    /// <summary>
    /// Largest per-stream window autotuning may reach: the window doubles while the reader drains a quarter of it
    /// within one round trip (a long fat path), so one stream can fill it. Default 16 MiB.
    /// </summary>
    public int MaxStreamReceiveWindow { get; init; } = 16 << 20;

    /// <summary>Bytes over all streams the peer may send beyond what the applications have read. Default 16 MiB.</summary>
    public int ConnectionReceiveWindow { get; init; } = 16 << 20;

    /// <summary>Bytes a stream buffers for sending (unacknowledged plus unsent) before WriteAsync waits. Default 1 MiB.</summary>
    public int StreamSendBuffer { get; init; } = 1 << 20;

    /// <summary>Largest per-stream send buffer: it grows to twice the congestion window (in bytes) up to this. Default 16 MiB.</summary>
    public int MaxStreamSendBuffer { get; init; } = 16 << 20;

    /// <summary>Peer-opened streams that wait in the accept queue before new ones are refused. Default 128.</summary>
    public int AcceptBacklog { get; init; } = 128;

    /// <summary>Most streams the peer may have open at once; beyond that its opens are refused. Default 4096.</summary>
    public int MaxIncomingStreams { get; init; } = 4096;

    /// <summary>Initial congestion window in packets (RFC 6928 uses 10). Default 10.</summary>
    public int InitialCongestionWindow { get; init; } = 10;

    /// <summary>
    /// The congestion controller: <see cref="MuxCongestionControl.Bbr"/> (default; paced, random loss is not read as
    /// congestion) or <see cref="MuxCongestionControl.NewReno"/> (loss-based, for comparison).
    /// </summary>
    public MuxCongestionControl CongestionControl { get; init; } = MuxCongestionControl.Bbr;

    /// <summary>Largest congestion window in packets. Default 4096.</summary>
    public int MaxCongestionWindow { get; init; } = 4096;

    /// <summary>Lower bound of the retransmission timeout. RFC 6298 suggests 1 s; meshes with tens of ms RTT use less. Default 100 ms.</summary>
    public TimeSpan MinRetransmissionTimeout { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Upper bound of the retransmission timeout after backoff. Default 5 s.</summary>
    public TimeSpan MaxRetransmissionTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Retransmission timeout before the first RTT sample (RFC 6298 §2.1 says 1 s). Default 500 ms.</summary>
    public TimeSpan InitialRetransmissionTimeout { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Longest the receiver holds back an acknowledgement of an ack-eliciting packet. Default 5 ms.</summary>
    public TimeSpan MaxAckDelay { get; init; } = TimeSpan.FromMilliseconds(5);

    /// <summary>A PING is sent when nothing was sent for this long. Default 5 s.</summary>
    public TimeSpan KeepAliveInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The multiplexer closes (streams fail with a timeout) when nothing arrived for this long. Default 30 s.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>After a stream is disposed, how long the peer has to finish before the stream is reset. Default 10 s.</summary>
    public TimeSpan LingerTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Received datagrams queued for <see cref="StreamMultiplexer.Datagrams"/>; newer ones are dropped (and counted) when full. Default 1024.</summary>
    public int DatagramQueueCapacity { get; init; } = 1024;

    /// <summary>Checks the values; returns every problem found.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (StreamReceiveWindow < 4096)
        {
            errors.Add("StreamReceiveWindow must be at least 4096 bytes.");
        }
        if (ConnectionReceiveWindow < StreamReceiveWindow || ConnectionReceiveWindow < 65536)
        {
            errors.Add("ConnectionReceiveWindow must be at least StreamReceiveWindow and at least 65536 bytes.");
        }
        if (StreamSendBuffer < 4096)
        {
            errors.Add("StreamSendBuffer must be at least 4096 bytes.");
        }
        if (MaxStreamReceiveWindow < StreamReceiveWindow || MaxStreamSendBuffer < StreamSendBuffer)
        {
            errors.Add("MaxStreamReceiveWindow and MaxStreamSendBuffer must be at least StreamReceiveWindow and StreamSendBuffer.");
        }
        if (AcceptBacklog < 1 || MaxIncomingStreams < 1)
        {
            errors.Add("AcceptBacklog and MaxIncomingStreams must be positive.");
        }
        if (InitialCongestionWindow < 2 || MaxCongestionWindow < InitialCongestionWindow)
        {
            errors.Add("InitialCongestionWindow must be at least 2 and at most MaxCongestionWindow.");
        }
        if (MinRetransmissionTimeout <= TimeSpan.Zero || MaxRetransmissionTimeout < MinRetransmissionTimeout || InitialRetransmissionTimeout <= TimeSpan.Zero)
        {
            errors.Add("Retransmission timeouts must be positive with Min <= Max.");
        }
        if (MaxAckDelay < TimeSpan.Zero || KeepAliveInterval <= TimeSpan.Zero || IdleTimeout <= KeepAliveInterval || LingerTimeout < TimeSpan.Zero)
        {
            errors.Add("MaxAckDelay >= 0, KeepAliveInterval > 0, IdleTimeout > KeepAliveInterval and LingerTimeout >= 0 are required.");
        }
        if (DatagramQueueCapacity < 1)
        {
            errors.Add("DatagramQueueCapacity must be positive.");
        }
        return errors;
    }
}

/// <summary>Congestion controllers of the multiplexer. Values are stable.</summary>
public enum MuxCongestionControl
{
    /// <summary>BBR (v1 model): paces at the estimated bottleneck bandwidth, window 2 x bandwidth-delay product.</summary>
    Bbr = 10,

    /// <summary>NewReno in packets with a 0.7 reduction per loss event (loss-based; collapses under random loss).</summary>
    NewReno = 20,
}

/// <summary>Why a stream or multiplexer failed. Values are stable (used in logs and exceptions).</summary>
public enum MuxError
{
    /// <summary>The acceptor refused the stream (see <see cref="MuxException.ApplicationCode"/>).</summary>
    Refused = 10,

    /// <summary>The peer reset the stream.</summary>
    ResetByPeer = 20,

    /// <summary>This side aborted the stream.</summary>
    Aborted = 30,

    /// <summary>The peer closed the multiplexer.</summary>
    ClosedByPeer = 40,

    /// <summary>The multiplexer was disposed locally.</summary>
    Closed = 50,

    /// <summary>Nothing arrived from the peer within the idle timeout.</summary>
    Timeout = 60,

    /// <summary>The transport failed while sending.</summary>
    TransportFailed = 70,
}

/// <summary>A stream or multiplexer failure. It is an <see cref="IOException"/>, as a broken socket would be.</summary>
public sealed class MuxException : Skywire.Core.Streams.StreamAbortedException
{
    /// <summary>Creates the exception.</summary>
    public MuxException(MuxError error, long applicationCode, string message, Exception? inner = null)
        : base(message, inner)
    {
        Error = error;
        ApplicationCode = applicationCode;
    }

    /// <summary>Creates the exception.</summary>
    public MuxException() : this(MuxError.Closed, 0, "Multiplexer closed.") { }

    /// <summary>Creates the exception.</summary>
    public MuxException(string message) : this(MuxError.Closed, 0, message) { }

    /// <summary>Creates the exception.</summary>
    public MuxException(string message, Exception inner) : this(MuxError.Closed, 0, message, inner) { }

    /// <summary>The failure category.</summary>
    public MuxError Error { get; }

    /// <summary>Code given by the application that refused, reset or closed (0 when none).</summary>
    public long ApplicationCode { get; }
}

/// <summary>A snapshot of a multiplexer's counters.</summary>
public sealed record MuxStatistics
{
    /// <summary>Packets (datagrams) sent.</summary>
    public long PacketsSent { get; init; }

    /// <summary>Packets accepted from the peer (duplicates and bad ones excluded).</summary>
    public long PacketsReceived { get; init; }

    /// <summary>Bytes handed to the transport.</summary>
    public long BytesSent { get; init; }

    /// <summary>Bytes of accepted packets.</summary>
    public long BytesReceived { get; init; }

    /// <summary>Malformed datagrams dropped.</summary>
    public long BadDatagrams { get; init; }

    /// <summary>Frames dropped because they broke a rule (flow control, unknown stream...).</summary>
    public long BadFrames { get; init; }

    /// <summary>Duplicate packets dropped.</summary>
    public long DuplicatePackets { get; init; }

    /// <summary>Packets declared lost (their contents are retransmitted).</summary>
    public long PacketsLost { get; init; }

    /// <summary>Retransmission timeouts that fired.</summary>
    public long RetransmissionTimeouts { get; init; }

    /// <summary>Stream payload bytes sent again.</summary>
    public long RetransmittedBytes { get; init; }

    /// <summary>Packets declared lost that were acknowledged later (reordering).</summary>
    public long SpuriousLosses { get; init; }

    /// <summary>Unreliable datagrams sent.</summary>
    public long DatagramsSent { get; init; }

    /// <summary>Unreliable datagrams received and queued.</summary>
    public long DatagramsReceived { get; init; }

    /// <summary>Unreliable datagrams dropped because the receive queue was full.</summary>
    public long DatagramsDropped { get; init; }

    /// <summary>Streams currently open.</summary>
    public int OpenStreams { get; init; }

    /// <summary>Smoothed round-trip time.</summary>
    public TimeSpan SmoothedRtt { get; init; }

    /// <summary>Current retransmission timeout (without backoff).</summary>
    public TimeSpan RetransmissionTimeout { get; init; }

    /// <summary>Congestion window in packets.</summary>
    public double CongestionWindow { get; init; }

    /// <summary>Ack-eliciting packets in flight.</summary>
    public int PacketsInFlight { get; init; }

    /// <summary>BBR's bottleneck bandwidth estimate in bytes per second (full packets; 0 with NewReno or before a sample).</summary>
    public double EstimatedBandwidth { get; init; }

    /// <summary>The smallest round trip seen (BBR: over the last 10 s).</summary>
    public TimeSpan MinRtt { get; init; }
}
