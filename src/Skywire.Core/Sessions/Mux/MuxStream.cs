using Skywire.Core.Streams;

namespace Skywire.Core.Sessions.Mux;

/// <summary>
/// One reliable, ordered, flow-controlled byte stream of a <see cref="StreamMultiplexer"/>.
/// </summary>
/// <remarks>
/// <para>States (<see cref="MuxStreamState"/>); every change goes through <c>TransitionTo</c>, which enforces this table
/// (<see cref="MuxStreamStates.IsAllowed"/>):</para>
/// <code>
///   local OpenStreamAsync                    remote OPEN
///        │                                       │
///        ▼          REFUSE                       ▼            Refuse, or Abort/Dispose before accepting
///     Opening ────────────────► Refused ◄── PendingAccept ──────────────┐
///        │ ACCEPT                  ▲             │ Accept, first read,   │
///        │ (then HalfClosedRemote  └─────────────┼───────────────────────┘
///        │  if the FIN came first)               │ write or completion
///        └──────────────────► Open ◄─────────────┘
///                   our FIN    │    │  the peer's FIN
///          (CompleteWrites,    │    │
///           Dispose)           ▼    ▼
///             HalfClosedLocal         HalfClosedRemote
///                   │ the peer's FIN        │ our FIN
///                   └──────► Closed ◄───────┘   (forgotten once every byte is acknowledged and read)
///
///   Opening, PendingAccept, Open, HalfClosed*, Closed ──► Reset   (Abort, the peer's RESET, the linger timeout,
///                                                                  the multiplexer ending: operations throw)
/// </code>
/// <para>Refused and Reset are terminal. ReadAsync returns 0 once the peer finished its direction (FIN) and every
/// byte was read; after a reset, a closed multiplexer or an abort it throws a <see cref="MuxException"/> (once the
/// bytes already received in order were read, when they are kept), never 0 for an unfinished stream. WriteAsync
/// waits while the send buffer is full (backpressure). <see cref="CompleteWritesAsync"/> finishes this direction.
/// Dispose finishes this direction if needed, discards further input and resets the stream if the peer has not
/// finished within <see cref="MuxOptions.LingerTimeout"/>. <see cref="Abort()"/> resets at once. A write that did not
/// finish (it was cancelled) leaves the stream incomplete: later writes and <see cref="CompleteWritesAsync"/> throw,
/// and disposing resets the stream instead of finishing it, as it does while a write is pending.</para>
/// <para>One reader and one writer may work concurrently; concurrent reads (or writes) are not supported.</para>
/// <para>A stream handed out by <see cref="StreamMultiplexer.AcceptStreamAsync"/> is accepted explicitly with
/// <see cref="Accept"/> or implicitly by the first read, write or completion; <see cref="Refuse"/> turns it down
/// and the opener's <see cref="StreamMultiplexer.OpenStreamAsync"/> throws a <see cref="MuxException"/> with
/// <see cref="MuxError.Refused"/>.</para>
/// </remarks>
public sealed class MuxStream : DuplexStream
{
    private readonly StreamMultiplexer _mux;

    internal MuxStream(StreamMultiplexer mux, long id, bool isLocal, ReadOnlyMemory<byte> openData, MuxOptions options)
    {
        _mux = mux;
        _state = isLocal ? MuxStreamState.Opening : MuxStreamState.PendingAccept;
        Id = id;
        IsLocallyOpened = isLocal;
        OpenData = openData;
        Key = (id << 1) | (isLocal ? 0L : 1L);
        WireRef = (id << 1) | (isLocal ? 1L : 0L);
        // The rings may grow to the autotuning limits; they allocate only what is buffered (ByteRing).
        SendBuffer = new ByteRing(Math.Max(options.StreamSendBuffer, options.MaxStreamSendBuffer));
        ReceiveBuffer = new ByteRing(Math.Max(options.StreamReceiveWindow, options.MaxStreamReceiveWindow));
        SendCapacity = options.StreamSendBuffer;
        ReceiveWindow = options.StreamReceiveWindow;
        RecvMaxAdvertised = options.StreamReceiveWindow;
    }

    /// <summary>Stream number, unique per opener within the multiplexer.</summary>
    public long Id { get; }

    /// <summary>True when this side opened the stream.</summary>
    public bool IsLocallyOpened { get; }

    /// <summary>The bytes the opener passed to <see cref="StreamMultiplexer.OpenStreamAsync"/> (e.g. a target app name).</summary>
    public ReadOnlyMemory<byte> OpenData { get; }

    /// <summary>Where the stream is in its life (a snapshot: it changes on the multiplexer's threads).</summary>
    public MuxStreamState State => _state;

    private volatile MuxStreamState _state;

    /// <summary>
    /// The one place the state changes (the caller holds the multiplexer's lock). An illegal change is a bug: it
    /// throws and leaves the state as it was.
    /// </summary>
    internal void TransitionTo(MuxStreamState next)
    {
        if (!MuxStreamStates.IsAllowed(_state, next))
        {
            throw new InvalidOperationException($"{this}: no transition from {_state} to {next}");
        }

        _state = next;
    }

    /// <summary>This side finished its writes (FIN requested), in a live stream.</summary>
    internal bool FinRequested => _state is MuxStreamState.HalfClosedLocal or MuxStreamState.Closed;

    // ---- State shared with the multiplexer; every field below is guarded by the multiplexer's lock. ----
    internal readonly long Key;      // dictionary key on this side
    internal readonly long WireRef;  // stream reference in frames this side sends
    internal bool Removed;           // no longer in the stream table
    internal Exception? Error;       // terminal failure, thrown by every later operation
    internal TaskCompletionSource<MuxStream>? OpenCompletion;

    // Send direction.
    internal readonly ByteRing SendBuffer;
    internal int SendCapacity;       // grows with the congestion window up to MaxStreamSendBuffer
    internal long WriteOffset;       // bytes written by the application
    internal long SendNext;          // first offset never sent
    internal long SendAcked;         // every byte below is acknowledged
    internal readonly RangeSet SendAckedAbove = new(); // acknowledged ranges above SendAcked (SACK)
    internal readonly RangeSet Retransmit = new();     // ranges to send again
    internal long PeerMaxStreamData; // flow-control limit from the peer
    internal bool FinSent;
    internal bool FinAcked;
    internal bool FinResend;
    internal bool InReadyQueue;
    internal TaskCompletionSource? WriteWaiter;
    internal bool Writing;           // a write is in progress
    internal bool WriteCut;          // a write did not finish (cancelled): the stream can only end as a failure

    // Receive direction.
    internal readonly ByteRing ReceiveBuffer;
    internal int ReceiveWindow;      // doubles up to MaxStreamReceiveWindow while the reader drains it within a round trip
    internal long LastCreditAt = long.MinValue; // when credit was last returned (µs)
    internal long ReadOffset;        // bytes consumed by the application
    internal readonly RangeSet Received = new();
    internal long RecvHighest;       // highest offset seen (connection flow-control accounting)
    internal long RecvMaxAdvertised; // limit we told the peer
    internal long FinOffset = -1;
    internal bool Discarding;        // disposed: input is consumed and dropped
    internal bool Disposed;
    internal long LingerDeadline = long.MaxValue;
    internal TaskCompletionSource? ReadWaiter;
    internal TaskCompletionSource? AckWaiter; // WhenWritesAcknowledgedAsync
    internal bool ReceiveTruncated;  // removed after a failure with bytes unread: no clean end of stream for the reader

    internal void WakeReader()
    {
        var w = ReadWaiter;
        ReadWaiter = null;
        w?.TrySetResult();
    }

    internal void WakeWriter()
    {
        var w = WriteWaiter;
        WriteWaiter = null;
        w?.TrySetResult();
    }

    /// <summary>Accepts a stream received from <see cref="StreamMultiplexer.AcceptStreamAsync"/> (no-op otherwise).</summary>
    public void Accept() => _mux.AcceptStream(this);

    /// <summary>Refuses a stream received from <see cref="StreamMultiplexer.AcceptStreamAsync"/> that was not accepted yet.</summary>
    /// <returns>False when the stream was already accepted (or closed).</returns>
    public bool Refuse(long applicationCode = 0) => _mux.RefuseStream(this, applicationCode);

    /// <summary>Resets both directions at once (code 0); buffered data is discarded and the peer sees a <see cref="MuxException"/>.</summary>
    public override void Abort() => Abort(0);

    /// <summary>Resets both directions at once; buffered data is discarded and the peer sees a <see cref="MuxException"/> with <paramref name="applicationCode"/>.</summary>
    public void Abort(long applicationCode) => _mux.AbortStream(this, applicationCode, MuxError.Aborted);

    /// <summary>Finishes the send direction (FIN) after the data already written. Further writes throw.</summary>
    public override ValueTask CompleteWritesAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        _mux.CompleteWrites(this);
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Completes once this direction is finished and the peer acknowledged every byte and the FIN (received by its
    /// multiplexer: whether its application read them is its own business); throws a <see cref="MuxException"/> when
    /// the stream or the multiplexer fails first.
    /// </summary>
    public override ValueTask WhenWritesAcknowledgedAsync(CancellationToken cancellationToken = default) =>
        _mux.WhenWritesAcknowledgedAsync(this, cancellationToken);

    /// <inheritdoc/>
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        _mux.ReadAsync(this, buffer, cancellationToken);


    /// <inheritdoc/>
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        _mux.WriteAsync(this, buffer, cancellationToken);


    /// <inheritdoc/>
    public override string ToString() => $"MuxStream {(IsLocallyOpened ? "L" : "R")}{Id}";

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _mux.DisposeStream(this);
        }
        base.Dispose(disposing);
    }
}

/// <summary>
/// States of a <see cref="MuxStream"/> (drawn at the top of <see cref="MuxStream"/>); the allowed changes are
/// <see cref="MuxStreamStates.IsAllowed"/>. Values are stable: never renumber.
/// </summary>
public enum MuxStreamState
{
    /// <summary>Opened here: OPEN sent, waiting for the peer's ACCEPT or REFUSE.</summary>
    Opening = 0,

    /// <summary>Opened by the peer: waiting in the accept queue, or handed out and not yet accepted.</summary>
    PendingAccept = 10,

    /// <summary>Accepted; both directions open.</summary>
    Open = 20,

    /// <summary>This side finished its writes (FIN); the peer's direction is still open.</summary>
    HalfClosedLocal = 30,

    /// <summary>The peer finished its writes (its FIN arrived); this side's direction is still open.</summary>
    HalfClosedRemote = 40,

    /// <summary>Both directions finished; forgotten once every byte was acknowledged and read.</summary>
    Closed = 50,

    /// <summary>Refused before it opened, by either side (terminal).</summary>
    Refused = 60,

    /// <summary>Aborted, reset by the peer or the linger timeout, or its multiplexer ended (terminal; operations throw).</summary>
    Reset = 70,
}

/// <summary>Transition rules of <see cref="MuxStreamState"/>.</summary>
public static class MuxStreamStates
{
    /// <summary>Whether a stream may go from <paramref name="from"/> to <paramref name="to"/>.</summary>
    public static bool IsAllowed(MuxStreamState from, MuxStreamState to) => (from, to) switch
    {
        (MuxStreamState.Opening, MuxStreamState.Open or MuxStreamState.Refused or MuxStreamState.Reset) => true,
        (MuxStreamState.PendingAccept, MuxStreamState.Open or MuxStreamState.Refused or MuxStreamState.Reset) => true,
        (MuxStreamState.Open, MuxStreamState.HalfClosedLocal or MuxStreamState.HalfClosedRemote or MuxStreamState.Reset) => true,
        (MuxStreamState.HalfClosedLocal or MuxStreamState.HalfClosedRemote, MuxStreamState.Closed or MuxStreamState.Reset) => true,
        (MuxStreamState.Closed, MuxStreamState.Reset) => true,
        _ => false,
    };

    /// <summary>Refused or Reset: nothing more happens to the stream.</summary>
    public static bool IsTerminal(this MuxStreamState state) => state is MuxStreamState.Refused or MuxStreamState.Reset;

    /// <summary>Accepted and not failed: data and FINs flow (Open, HalfClosedLocal, HalfClosedRemote, Closed).</summary>
    public static bool IsAccepted(this MuxStreamState state) =>
        state is MuxStreamState.Open or MuxStreamState.HalfClosedLocal or MuxStreamState.HalfClosedRemote or MuxStreamState.Closed;
}
