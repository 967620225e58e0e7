
namespace Skywire.Core.Sessions.Mux;

/// <summary>
/// One reliable, ordered, flow-controlled byte stream of a <see cref="StreamMultiplexer"/>.
/// </summary>
/// <remarks>
/// <para>ReadAsync returns 0 once the peer finished its direction (FIN) and every byte was read. WriteAsync waits
/// while the send buffer is full (backpressure). <see cref="CompleteWritesAsync"/> finishes this direction.
/// Dispose finishes this direction if needed, discards further input and resets the stream if the peer has not
/// finished within <see cref="MuxOptions.LingerTimeout"/>. <see cref="Abort"/> resets at once.</para>
/// <para>One reader and one writer may work concurrently; concurrent reads (or writes) are not supported.</para>
/// <para>A stream handed out by <see cref="StreamMultiplexer.AcceptStreamAsync"/> is accepted explicitly with
/// <see cref="Accept"/> or implicitly by the first read, write or completion; <see cref="Refuse"/> turns it down
/// and the opener's <see cref="StreamMultiplexer.OpenStreamAsync"/> throws a <see cref="MuxException"/> with
/// <see cref="MuxError.Refused"/>.</para>
/// </remarks>
public sealed class MuxStream : Stream
{
    internal enum OpenState
    {
        Opening = 0,        // local, Open sent, waiting for Accept or Refuse
        PendingAccept = 10, // remote, in the accept queue or handed out but not yet accepted
        Open = 20,
        Refused = 30,
    }

    private readonly StreamMultiplexer _mux;

    internal MuxStream(StreamMultiplexer mux, long id, bool isLocal, ReadOnlyMemory<byte> openData, MuxOptions options)
    {
        _mux = mux;
        Id = id;
        IsLocallyOpened = isLocal;
        OpenData = openData;
        Key = (id << 1) | (isLocal ? 0L : 1L);
        WireRef = (id << 1) | (isLocal ? 1L : 0L);
        SendBuffer = new ByteRing(options.StreamSendBuffer);
        ReceiveBuffer = new ByteRing(options.StreamReceiveWindow);
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

    // ---- State shared with the multiplexer; every field below is guarded by the multiplexer's lock. ----
    internal readonly long Key;      // dictionary key on this side
    internal readonly long WireRef;  // stream reference in frames this side sends
    internal OpenState State;
    internal bool Removed;           // no longer in the stream table
    internal Exception? Error;       // terminal failure, thrown by every later operation
    internal TaskCompletionSource<MuxStream>? OpenCompletion;

    // Send direction.
    internal readonly ByteRing SendBuffer;
    internal readonly int SendCapacity;
    internal long WriteOffset;       // bytes written by the application
    internal long SendNext;          // first offset never sent
    internal long SendAcked;         // every byte below is acknowledged
    internal readonly RangeSet SendAckedAbove = new(); // acknowledged ranges above SendAcked (SACK)
    internal readonly RangeSet Retransmit = new();     // ranges to send again
    internal long PeerMaxStreamData; // flow-control limit from the peer
    internal bool FinRequested;
    internal bool FinSent;
    internal bool FinAcked;
    internal bool FinResend;
    internal bool InReadyQueue;
    internal TaskCompletionSource? WriteWaiter;

    // Receive direction.
    internal readonly ByteRing ReceiveBuffer;
    internal readonly int ReceiveWindow;
    internal long ReadOffset;        // bytes consumed by the application
    internal readonly RangeSet Received = new();
    internal long RecvHighest;       // highest offset seen (connection flow-control accounting)
    internal long RecvMaxAdvertised; // limit we told the peer
    internal long FinOffset = -1;
    internal bool Discarding;        // disposed: input is consumed and dropped
    internal bool Disposed;
    internal long LingerDeadline = long.MaxValue;
    internal TaskCompletionSource? ReadWaiter;

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

    /// <inheritdoc/>
    public override bool CanRead => true;

    /// <inheritdoc/>
    public override bool CanWrite => true;

    /// <inheritdoc/>
    public override bool CanSeek => false;

    /// <inheritdoc/>
    public override long Length => throw new NotSupportedException();

    /// <inheritdoc/>
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <summary>Accepts a stream received from <see cref="StreamMultiplexer.AcceptStreamAsync"/> (no-op otherwise).</summary>
    public void Accept() => _mux.AcceptStream(this);

    /// <summary>Refuses a stream received from <see cref="StreamMultiplexer.AcceptStreamAsync"/> that was not accepted yet.</summary>
    /// <returns>False when the stream was already accepted (or closed).</returns>
    public bool Refuse(long applicationCode = 0) => _mux.RefuseStream(this, applicationCode);

    /// <summary>Resets both directions at once; buffered data is discarded and the peer sees a <see cref="MuxException"/>.</summary>
    public void Abort(long applicationCode = 0) => _mux.AbortStream(this, applicationCode, MuxError.Aborted);

    /// <summary>Finishes the send direction (FIN) after the data already written. Further writes throw.</summary>
    public ValueTask CompleteWritesAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        _mux.CompleteWrites(this);
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc/>
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        _mux.ReadAsync(this, buffer, cancellationToken);

    /// <inheritdoc/>
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <inheritdoc/>
    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    /// <inheritdoc/>
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        _mux.WriteAsync(this, buffer, cancellationToken);

    /// <inheritdoc/>
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <inheritdoc/>
    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    /// <summary>No-op: written data is sent as soon as the windows allow.</summary>
    public override void Flush() { }

    /// <inheritdoc/>
    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc/>
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    /// <inheritdoc/>
    public override void SetLength(long value) => throw new NotSupportedException();

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
