
namespace Skywire.Core.Sessions.Mux;

public sealed partial class StreamMultiplexer
{
    // Everything below is guarded by _sync. Times are microseconds on the TimeProvider's clock.

    // Streams.
    private readonly Dictionary<long, MuxStream> _streams = [];
    private readonly RangeSet _peerStreamsSeen = new();
    private readonly List<MuxStream> _lingering = [];
    private readonly Queue<MuxStream> _ready = new();
    private readonly Queue<Control> _controls = new();
    private long _nextLocalId;
    private int _acceptPending;
    private int _incomingStreams;

    // Receiving packets.
    private readonly RangeSet _recvPackets = new();
    private long _recvFloor;
    private long _largestRecv = -1;
    private long _largestRecvAt;
    private int _unackedEliciting;
    private bool _ackNeeded;
    private bool _ackNow;
    private long _ackDeadline = long.MaxValue;
    private long _lastRecvAt;

    // Sending packets, loss recovery and congestion control.
    private readonly List<SentPacket?> _sent = [];
    private readonly Stack<SentPacket> _sentPool = new();
    private int _sentHead;
    private long _nextPn;
    private int _inFlight;
    private long _largestAcked = -1;
    private long _lossTime = long.MaxValue;
    private double _cwnd;
    private double _ssthresh = double.MaxValue;
    private long _recoveryPn = -1;
    private long _recoveryTriggerPn = -1;
    private double _cwndBeforeRecovery;
    private double _ssthreshBeforeRecovery;
    private int _packetThreshold = 3; // RFC 9002 kPacketThreshold, raised when reordering is seen
    private int _probeCredit;
    private long _srtt;
    private long _rttvar;
    private long _minRtt = long.MaxValue;
    private long _latestRtt;
    private bool _hasRtt;
    private long _rto;
    private int _rtoBackoff;
    private long _rtoStart = long.MaxValue;
    private long _lastSendAt;
    private bool _pingPending;
    private readonly BbrCongestionControl? _bbr; // null: NewReno (MuxOptions.CongestionControl)
    private double _pacingBudget;                 // packets that may leave now (BBR pacing)
    private long _pacingAt;                       // when the budget was last refilled

    // Connection flow control.
    private long _peerMaxData;
    private long _sentData;
    private long _localMaxData;
    private long _recvData;
    private long _consumedData;
    private bool _maxDataPending;

    // Statistics.
    private long _statPacketsSent;
    private long _statPacketsReceived;
    private long _statBytesSent;
    private long _statBytesReceived;
    private long _statBadDatagrams;
    private long _statBadFrames;
    private long _statDuplicates;
    private long _statLost;
    private long _statRto;
    private long _statSpurious;
    private long _statRetransmittedBytes;
    private long _statDatagramsSent;
    private long _statDatagramsReceived;
    private long _statDatagramsDropped;

    /// <summary>A control frame waiting to be sent, or recorded in a sent packet for retransmission on loss.</summary>
    private readonly record struct Control(MuxFrameType Type, long StreamRef, long Value, MuxStream? Stream, long FinalSize = 0);

    // Streams we reset whose peer has not yet told its final size: key -> highest offset we had received.
    private readonly Dictionary<long, long> _awaitingFinalSize = [];

    /// <summary>A range of stream bytes (and possibly its FIN) carried by a sent packet.</summary>
    private readonly record struct Chunk(MuxStream Stream, long Offset, int Length, bool Fin);

    /// <summary>An ack-eliciting packet awaiting acknowledgement. Pooled.</summary>
    private sealed class SentPacket
    {
        public long Number;
        public long SentAt;
        public bool Acked;
        public bool Lost;
        public bool HasMaxData;
        public PacketRateState Rate;
        public readonly List<Chunk> Chunks = [];
        public readonly List<Control> Controls = [];

        public void Reset()
        {
            Acked = Lost = HasMaxData = false;
            Chunks.Clear();
            Controls.Clear();
        }
    }

    private long RetransmissionDeadline =>
        _rtoStart == long.MaxValue ? long.MaxValue : _rtoStart + Math.Min(_rto << Math.Min(_rtoBackoff, 16), ToMicros(_options.MaxRetransmissionTimeout));

    private void EnqueueControl(Control control)
    {
        _controls.Enqueue(control);
        Signal();
    }

    private void Enqueue(MuxStream s)
    {
        if (!s.InReadyQueue && HasSendWork(s))
        {
            s.InReadyQueue = true;
            _ready.Enqueue(s);
            Signal();
        }
    }

    private bool HasSendWork(MuxStream s)
    {
        if (s.Removed || s.Error is not null || !s.State.IsAccepted())
        {
            return false;
        }
        if (!s.Retransmit.IsEmpty)
        {
            return true;
        }
        if (Math.Min(s.WriteOffset, s.PeerMaxStreamData) > s.SendNext && _peerMaxData > _sentData)
        {
            return true;
        }
        return s.FinRequested && !s.FinAcked && (!s.FinSent || s.FinResend) && s.SendNext == s.WriteOffset;
    }

    private MuxStream? Lookup(long wireRef)
    {
        // A received reference has bit 0 set when the peer opened the stream, which is exactly our key layout.
        return _streams.GetValueOrDefault(wireRef);
    }

    private void FailStream(MuxStream s, MuxException error)
    {
        if (!s.State.IsTerminal())
        {
            s.TransitionTo(MuxStreamState.Reset);
        }
        s.Error ??= error;
        s.OpenCompletion?.TrySetException(error);
        if (s.AckWaiter is { } acked && !WritesAcknowledged(s))
        {
            acked.TrySetException(Clone(error));
        }
        s.WakeReader();
        s.WakeWriter();
    }

    /// <summary>This side finished writing and the peer acknowledged every byte and the FIN.</summary>
    private static bool WritesAcknowledged(MuxStream s) => s.FinAcked && s.SendAcked >= s.WriteOffset;

    private static void WakeAckWaiter(MuxStream s)
    {
        if (s.AckWaiter is { } acked && WritesAcknowledged(s))
        {
            acked.TrySetResult();
        }
    }

    private void RemoveStream(MuxStream s)
    {
        if (s.Removed)
        {
            return;
        }
        s.Removed = true;
        _streams.Remove(s.Key);
        if (!s.IsLocallyOpened)
        {
            _incomingStreams--;
        }
        s.SendBuffer.Free();
        s.Retransmit.Clear();
        if (s.Error is not null)
        {
            // Unread bytes are dropped with the stream: unless the reader already reached the FIN, it must not see a
            // clean end of stream any more (issue 12.1: a reset after the FIN would otherwise read as a complete stream).
            s.ReceiveTruncated = s.ReadOffset != s.FinOffset;
            s.ReceiveBuffer.Free();
            s.Received.Clear();
            if (_closed is null)
            {
                // Bytes received but never to be read still count against the connection window: release them.
                ReturnConnectionCredit(s.RecvHighest - s.ReadOffset);
                s.ReadOffset = s.RecvHighest;
            }
        }
        if (s.LingerDeadline != long.MaxValue)
        {
            _lingering.Remove(s);
        }
        s.WakeReader();
        s.WakeWriter();
    }

    private void CheckStreamDone(MuxStream s)
    {
        if (s.Removed)
        {
            return;
        }
        var sendDone = s.FinAcked && s.SendAcked >= s.WriteOffset;
        var recvDone = s.FinOffset >= 0 && s.ReadOffset >= s.FinOffset;
        if (sendDone && recvDone)
        {
            RemoveStream(s);
        }
    }

    /// <summary>The application consumed <paramref name="n"/> bytes: free them and return credit to the peer.</summary>
    private void Consume(MuxStream s, long n)
    {
        if (n > 0)
        {
            s.ReadOffset += n;
            s.ReceiveBuffer.Release(s.ReadOffset);
            s.Received.RemoveBelow(s.ReadOffset);
            _consumedData += n;
        }
        // Credit goes back once a quarter of a window was consumed, so the sender never stalls on a full window.
        if (s.FinOffset < 0 && !s.Removed)
        {
            var target = s.ReadOffset + s.ReceiveWindow;
            if (target - s.RecvMaxAdvertised >= s.ReceiveWindow / 4)
            {
                // Autotuning (as quic-go): a quarter of the window drained within one round trip means the window, not
                // the reader, limits the stream on this path (window < 4 x bandwidth-delay product): double it.
                var now = NowMicros();
                if (_hasRtt && now - s.LastCreditAt < _srtt && s.ReceiveWindow < _options.MaxStreamReceiveWindow)
                {
                    s.ReceiveWindow = (int)Math.Min((long)s.ReceiveWindow * 2, _options.MaxStreamReceiveWindow);
                    target = s.ReadOffset + s.ReceiveWindow;
                }
                s.LastCreditAt = now;
                s.RecvMaxAdvertised = target;
                EnqueueControl(new Control(MuxFrameType.MaxStreamData, s.WireRef, 0, s));
            }
        }
        ReturnConnectionCredit(0);
    }

    // The send buffer must hold what is in flight plus what waits for retransmission: twice the congestion window
    // (in bytes), between StreamSendBuffer and MaxStreamSendBuffer. It never shrinks (data may be buffered).
    private void GrowSendCapacity(MuxStream s)
    {
        var wanted = (long)(2 * _cwnd * _maxPacket);
        if (wanted > s.SendCapacity && s.SendCapacity < _options.MaxStreamSendBuffer)
        {
            s.SendCapacity = (int)Math.Min(wanted, _options.MaxStreamSendBuffer);
        }
    }

    private void ReturnConnectionCredit(long extraConsumed)
    {
        _consumedData += extraConsumed;
        var connTarget = _consumedData + _options.ConnectionReceiveWindow;
        if (connTarget - _localMaxData >= _options.ConnectionReceiveWindow / 4)
        {
            _localMaxData = connTarget;
            _maxDataPending = true;
            Signal();
        }
    }
}
