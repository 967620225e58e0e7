using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Skywire.Core.Sessions.Mux;

/// <summary>
/// Multiplexes reliable, ordered byte streams (<see cref="MuxStream"/>) and unreliable datagrams over one
/// unreliable datagram path (<see cref="IDatagramTransport"/>). Wire format: docs/protocol.md §6 "Streams".
/// </summary>
/// <remarks>
/// <para>Design: QUIC-like. Every packet has a fresh packet number; the receiver acknowledges packet numbers with
/// SACK ranges; lost packets (3 later packets acknowledged, or a time threshold, or the retransmission timeout
/// of RFC 6298) have their stream ranges queued again, so retransmissions never reuse a packet number and every
/// RTT sample is unambiguous (Karn's problem does not arise). Congestion control is BBR (<see cref="BbrCongestionControl"/>:
/// paced at the estimated bottleneck bandwidth, random loss is not read as congestion) or, as an option, NewReno
/// counted in packets (slow start, congestion avoidance, one window reduction per loss event, window 2 after timeouts).
/// Flow control is credit-based with absolute limits: a per-stream window and a connection window.</para>
/// <para>Threading: one lock guards all state. <see cref="Receive"/> runs on the caller's thread; a single loop
/// task builds and sends packets and handles every timer through one <see cref="ITimer"/>. Nothing allocates
/// per packet on the stream path (pooled ring buffers and packet records).</para>
/// <para>Refinements of the contract in docs/mesh-contracts: <see cref="MuxStream.Accept"/>/<see cref="MuxStream.Refuse"/>
/// decide an incoming stream (the first read or write accepts implicitly); <see cref="Completion"/> and
/// <see cref="CloseReason"/> report the end of the multiplexer.</para>
/// </remarks>
public sealed partial class StreamMultiplexer : IAsyncDisposable
{
    /// <summary>Refuse code used when the accept backlog or the incoming stream limit is full.</summary>
    public const long RefusedBusyCode = 0x3FFF_FF01;

    /// <summary>Reset code used when a disposed stream's peer did not finish within the linger timeout.</summary>
    public const long LingerTimeoutCode = 0x3FFF_FF02;

    private const int BatchSize = 44; // packets built per turn of the send loop: one UDP GSO send of up to 64 KB
    private const int MaxPacketThreshold = 20;
    private const int AckEveryPackets = 2;
    private const double LossBeta = 0.7; // window kept after a loss event (CUBIC's beta, RFC 9438 §4.6)
    private const int MaxAckRangesKept = 256;
    private const double MinPacingBurst = 10;       // packets
    private const long PacingHorizonMicros = 4000;  // the pacer may catch up on at most 4 ms

    private readonly Lock _sync = new();
    private readonly IDatagramTransport _transport;
    private readonly MuxOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly int _maxPacket;
    private readonly Channel<MuxStream> _acceptQueue;
    private readonly Channel<ReadOnlyMemory<byte>> _datagrams;
    private readonly Channel<byte> _signal;
    private readonly ITimer _timer;
    private readonly Task _loop;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _disposed;

    private volatile Exception? _closed;
    private MuxError? _closeReason;
    private bool _closeFrameToSend;
    private long _timerDue = long.MaxValue;
    private long _lastBadLog = long.MinValue;

    /// <summary>Creates a multiplexer over <paramref name="transport"/> and starts its send loop.</summary>
    public StreamMultiplexer(IDatagramTransport transport, MuxOptions? options = null, ILogger? logger = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(transport);
        _transport = transport;
        _options = options ?? MuxOptions.Default;
        var errors = _options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("Invalid MuxOptions: " + string.Join(" ", errors), nameof(options));
        }
        _maxPacket = transport.MaxDatagramSize;
        if (_maxPacket < 256)
        {
            throw new ArgumentException("The transport must carry datagrams of at least 256 bytes.", nameof(transport));
        }
        _logger = logger ?? NullLogger.Instance;
        _time = timeProvider ?? TimeProvider.System;
        _acceptQueue = Channel.CreateUnbounded<MuxStream>(new UnboundedChannelOptions { SingleWriter = true });
        _datagrams = Channel.CreateBounded<ReadOnlyMemory<byte>>(new BoundedChannelOptions(_options.DatagramQueueCapacity)
        {
            FullMode = BoundedChannelFullMode.Wait, // TryWrite then fails when full, so drops can be counted
            SingleWriter = true,
        });
        _signal = Channel.CreateBounded<byte>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });

        var now = NowMicros();
        _lastRecvAt = now;
        _lastSendAt = now;
        _cwnd = _options.InitialCongestionWindow;
        if (_options.CongestionControl == MuxCongestionControl.Bbr)
        {
            _bbr = new BbrCongestionControl(_options.InitialCongestionWindow, _options.MaxCongestionWindow);
            _pacingBudget = _options.InitialCongestionWindow;
            _pacingAt = now;
        }
        _rto = ToMicros(_options.InitialRetransmissionTimeout);
        _peerMaxData = MuxProtocol.InitialConnectionWindow;
        _localMaxData = _options.ConnectionReceiveWindow;
        _maxDataPending = true; // tell the peer our real connection window at once
        _timer = _time.CreateTimer(static s => ((StreamMultiplexer)s!).OnTimerFired(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _loop = Task.Run(RunAsync);
        Signal();
    }

    /// <summary>Largest payload <see cref="TrySendDatagram"/> accepts.</summary>
    public int MaxDatagramPayloadSize => _maxPacket - 1 - 8 - 1 - VarInt.Size(_maxPacket);

    /// <summary>Largest open data <see cref="OpenStreamAsync"/> accepts.</summary>
    public int MaxOpenDataSize => Math.Min(MuxCodec.MaxOpenData, _maxPacket - 64);

    /// <summary>Unreliable datagrams from the peer, in arrival order (completed when the multiplexer closes).</summary>
    public ChannelReader<ReadOnlyMemory<byte>> Datagrams => _datagrams.Reader;

    /// <summary>Completes when the multiplexer has closed (disposed, closed by the peer, idle timeout, transport failure).</summary>
    public Task Completion => _completion.Task;

    /// <summary>Why the multiplexer closed, or null while it is open.</summary>
    public MuxError? CloseReason
    {
        get
        {
            lock (_sync)
            {
                return _closeReason;
            }
        }
    }

    /// <summary>
    /// Opens a stream. <paramref name="openData"/> (e.g. the target app name) is delivered to the acceptor as
    /// <see cref="MuxStream.OpenData"/>. Completes when the peer accepts; throws <see cref="MuxException"/>
    /// (<see cref="MuxError.Refused"/>) when it refuses, or another <see cref="MuxException"/> when the multiplexer fails.
    /// </summary>
    public async ValueTask<MuxStream> OpenStreamAsync(ReadOnlyMemory<byte> openData, CancellationToken cancellationToken = default)
    {
        if (openData.Length > MaxOpenDataSize)
        {
            throw new ArgumentException($"Open data is limited to {MaxOpenDataSize} bytes.", nameof(openData));
        }
        MuxStream stream;
        lock (_sync)
        {
            ThrowIfClosed();
            stream = new MuxStream(this, _nextLocalId++, isLocal: true, openData.ToArray(), _options)
            {
                OpenCompletion = new TaskCompletionSource<MuxStream>(TaskCreationOptions.RunContinuationsAsynchronously),
            };
            _streams.Add(stream.Key, stream);
            EnqueueControl(new Control(MuxFrameType.Open, stream.WireRef, 0, stream));
        }
        try
        {
            return await stream.OpenCompletion.Task.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            AbortStream(stream, 0, MuxError.Aborted);
            throw;
        }
    }

    /// <summary>Waits for the next stream the peer opens. Throws <see cref="MuxException"/> once the multiplexer has closed.</summary>
    public async ValueTask<MuxStream> AcceptStreamAsync(CancellationToken cancellationToken = default)
    {
        MuxStream stream;
        try
        {
            stream = await _acceptQueue.Reader.ReadAsync(cancellationToken);
        }
        catch (ChannelClosedException ex)
        {
            throw ex.InnerException is MuxException mux ? Clone(mux) : new MuxException(MuxError.Closed, 0, "Multiplexer closed.", ex);
        }
        lock (_sync)
        {
            _acceptPending--;
        }
        return stream;
    }

    /// <summary>
    /// Sends one unreliable datagram (no retransmission, no ordering). False when it is too large
    /// (see <see cref="MaxDatagramPayloadSize"/>) or the multiplexer has closed.
    /// </summary>
    public bool TrySendDatagram(ReadOnlySpan<byte> payload)
    {
        if (payload.Length > MaxDatagramPayloadSize || _closed is not null)
        {
            return false;
        }
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(_maxPacket);
        try
        {
            int length;
            lock (_sync)
            {
                if (_closed is not null)
                {
                    return false;
                }
                length = MuxCodec.WritePacketHeader(buffer, _nextPn++);
                MuxCodec.WriteDatagram(buffer, ref length, payload);
                _statPacketsSent++;
                _statBytesSent += length;
                _statDatagramsSent++;
            }
            return SendToTransport(buffer.AsSpan(0, length));
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>A snapshot of the counters.</summary>
    public MuxStatistics Statistics
    {
        get
        {
            lock (_sync)
            {
                return new MuxStatistics
                {
                    PacketsSent = _statPacketsSent,
                    PacketsReceived = _statPacketsReceived,
                    BytesSent = _statBytesSent,
                    BytesReceived = _statBytesReceived,
                    BadDatagrams = Interlocked.Read(ref _statBadDatagrams),
                    BadFrames = _statBadFrames,
                    DuplicatePackets = _statDuplicates,
                    PacketsLost = _statLost,
                    RetransmissionTimeouts = _statRto,
                    RetransmittedBytes = _statRetransmittedBytes,
                    SpuriousLosses = _statSpurious,
                    DatagramsSent = _statDatagramsSent,
                    DatagramsReceived = _statDatagramsReceived,
                    DatagramsDropped = _statDatagramsDropped,
                    OpenStreams = _streams.Count,
                    SmoothedRtt = TimeSpan.FromTicks(_srtt * 10),
                    RetransmissionTimeout = TimeSpan.FromTicks(_rto * 10),
                    CongestionWindow = _cwnd,
                    PacketsInFlight = _inFlight,
                    EstimatedBandwidth = _bbr is { Bandwidth: > 0 } b ? b.Bandwidth * 1e6 * _maxPacket : 0,
                    MinRtt = _bbr is { MinRtt: < long.MaxValue } r ? TimeSpan.FromTicks(r.MinRtt * 10) : TimeSpan.FromTicks(_minRtt == long.MaxValue ? 0 : _minRtt * 10),
                };
            }
        }
    }

    /// <summary>Closes the multiplexer: tells the peer (best effort), fails every stream and stops the loop. Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        lock (_sync)
        {
            CloseLocked(MuxError.Closed, 0, "Multiplexer disposed.", sendCloseFrame: true);
        }
        Signal();
        try
        {
            await _loop.WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (TimeoutException)
        {
            // The transport's Send is blocking far longer than its contract allows; leave the loop behind.
        }
        await _timer.DisposeAsync();
    }

    private void ThrowIfClosed()
    {
        if (_closed is MuxException closed)
        {
            throw Clone(closed);
        }
    }

    private static MuxException Clone(MuxException e) => new(e.Error, e.ApplicationCode, e.Message, e.InnerException);

    private long NowMicros()
    {
        var ts = _time.GetTimestamp();
        var f = _time.TimestampFrequency;
        return (ts / f * 1_000_000) + (ts % f * 1_000_000 / f);
    }

    private static long ToMicros(TimeSpan t) => t.Ticks / 10;

    private void Signal() => _signal.Writer.TryWrite(0);

    private void OnTimerFired()
    {
        // Timers may fire a little early: forget the armed deadline so the loop arms the timer again.
        Interlocked.Exchange(ref _timerDue, long.MaxValue);
        Signal();
    }

    private bool SendToTransport(byte[][] buffers, int[] lengths, int count)
    {
        if (count == 1)
        {
            return SendToTransport(buffers[0].AsSpan(0, lengths[0]));
        }
        try
        {
            _transport.SendBatch(buffers, lengths, count);
            return true;
        }
        catch (Exception ex)
        {
            Log.TransportFailed(_logger, ex);
            lock (_sync)
            {
                CloseLocked(MuxError.TransportFailed, 0, "The datagram transport failed: " + ex.Message, sendCloseFrame: false, ex);
            }
            return false;
        }
    }

    private bool SendToTransport(ReadOnlySpan<byte> packet)
    {
        try
        {
            _transport.Send(packet);
            return true;
        }
        catch (Exception ex)
        {
            Log.TransportFailed(_logger, ex);
            lock (_sync)
            {
                CloseLocked(MuxError.TransportFailed, 0, "The datagram transport failed: " + ex.Message, sendCloseFrame: false, ex);
            }
            return false;
        }
    }

    private async Task RunAsync()
    {
        var buffers = new byte[BatchSize][];
        var lengths = new int[BatchSize];
        for (var i = 0; i < buffers.Length; i++)
        {
            buffers[i] = new byte[_maxPacket];
        }
        try
        {
            while (await _signal.Reader.WaitToReadAsync())
            {
                _signal.Reader.TryRead(out _);
                while (true)
                {
                    int count;
                    bool finished;
                    lock (_sync)
                    {
                        count = BuildBatch(buffers, lengths);
                        finished = _closed is not null && !_closeFrameToSend;
                    }
                    if (count > 0 && !SendToTransport(buffers, lengths, count))
                    {
                        return;
                    }
                    if (finished)
                    {
                        return;
                    }
                    if (count < BatchSize)
                    {
                        break;
                    }
                }
            }
        }
        catch (Exception ex)
        {
            // A bug, not a peer's doing: fail loudly instead of leaving streams hanging.
            Log.LoopFailed(_logger, ex);
            lock (_sync)
            {
                CloseLocked(MuxError.Closed, 0, "Multiplexer loop failed: " + ex.Message, sendCloseFrame: false, ex);
            }
        }
    }

    // Caller holds _sync.
    private void CloseLocked(MuxError reason, long code, string message, bool sendCloseFrame, Exception? inner = null)
    {
        if (_closed is not null)
        {
            return;
        }
        var error = new MuxException(reason, code, message, inner);
        _closed = error;
        _closeReason = reason;
        _closeFrameToSend = sendCloseFrame;
        foreach (var s in _streams.Values)
        {
            FailStream(s, error);
            s.Removed = true;
            s.SendBuffer.Free();
            s.Retransmit.Clear();
        }
        _streams.Clear();
        _lingering.Clear();
        _ready.Clear();
        _controls.Clear();
        _acceptQueue.Writer.TryComplete(error);
        _datagrams.Writer.TryComplete();
        _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        Log.Closed(_logger, reason, message);
        _completion.TrySetResult();
        Signal();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1700, Level = LogLevel.Debug, Message = "Mux dropped a malformed datagram of {Length} bytes ({Total} so far)")]
        public static partial void BadDatagram(ILogger logger, int length, long total);

        [LoggerMessage(EventId = 1701, Level = LogLevel.Debug, Message = "Mux closed: {Reason} ({Detail})")]
        public static partial void Closed(ILogger logger, MuxError reason, string detail);

        [LoggerMessage(EventId = 1702, Level = LogLevel.Warning, Message = "Mux transport send failed")]
        public static partial void TransportFailed(ILogger logger, Exception exception);

        [LoggerMessage(EventId = 1703, Level = LogLevel.Error, Message = "Mux send loop failed")]
        public static partial void LoopFailed(ILogger logger, Exception exception);

        [LoggerMessage(EventId = 1704, Level = LogLevel.Debug, Message = "Mux retransmission timeout (backoff {Backoff}, {InFlight} packets in flight)")]
        public static partial void RetransmissionTimeout(ILogger logger, int backoff, int inFlight);

        [LoggerMessage(EventId = 1705, Level = LogLevel.Debug, Message = "Mux refused incoming stream {StreamId}: accept backlog or stream limit full")]
        public static partial void RefusedBusy(ILogger logger, long streamId);
    }
}

/// <summary>Specification constants of the stream protocol (docs/protocol.md §6 "Streams").</summary>
internal static class MuxProtocol
{
    /// <summary>Connection credit each side may assume before the peer's first MaxData frame.</summary>
    public const long InitialConnectionWindow = 65536;
}
