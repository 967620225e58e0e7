using System.Buffers.Binary;
using Skywire.Core.Streams;

namespace Skywire.Core.Node;

/// <summary>
/// A stream between two clusters that started on the messenger's relay and moves to a direct session when one comes
/// up, without losing, duplicating or reordering a byte (docs/messenger.md "Relayed streams move to a direct link").
/// </summary>
/// <remarks>
/// <para>Each direction moves on its own, at a byte count the other end learns before it needs it:</para>
/// <code>
///   dialler (A)                                         acceptor (B)
///   holds its writes, opens a direct mux stream  ──────▶ open {"handover": token, "sent": nA}: B reads the relay up to
///   with open data {"handover", "sent": nA}               nA, then the direct stream
///   (accepted) writes go to the direct stream    ◀────── first 8 bytes of the direct stream: nB (big-endian), then
///   and the relay gets A's end of stream                   B's writes; the relay gets B's end of stream
///   A reads the relay to its end, checks it read nB, then reads the direct stream after the 8 bytes
/// </code>
/// <para>A's end of stream on the relay is sent only after B accepted the direct stream, so when B reads it B already
/// knows nA: a relay end with a handover known is the switch, a relay end without one is the real end. A reads
/// B's relay end only while its own handover is in flight or done, so it can tell the same way. The relay is
/// closed once both of its directions have ended. States (one transition each way, under the write lock):</para>
/// <code>
///   Relayed ──handover accepted──▶ Direct
///   Relayed ──handover refused/failed──▶ Relayed (the dialler may try again with a later direct session)
/// </code>
/// </remarks>
internal sealed class HandoverStream : DuplexStream
{
    /// <summary>Bytes of the acceptor's count at the start of the direct stream.</summary>
    private const int CountSize = 8;

    private readonly DuplexStream _relay;
    private readonly bool _isDialler;
    private readonly Action<HandoverStream>? _onClosed;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private TaskCompletionSource<DuplexStream?>? _handoverInFlight;
    private DuplexStream? _direct;
    private long _written;
    private bool _writesSwitched;
    private bool _writesCompleted;
    private volatile bool _writeCut; // a write did not finish (cancelled or failed): the stream can only be aborted
    private long _read;
    private long _relayLimit = -1;
    private bool _readingDirect;
    private bool _readEnded;
    private int _relayHalvesDone;
    private int _closed;

    /// <param name="relay">The relayed messenger stream.</param>
    /// <param name="token">The random handover token carried in the relayed stream's open data.</param>
    /// <param name="app">The app the stream was opened to (a direct link offer names it).</param>
    /// <param name="isDialler">True on the node that dialled (it starts the handover).</param>
    /// <param name="onClosed">Called once when the stream is disposed or aborted.</param>
    public HandoverStream(DuplexStream relay, string token, string app, bool isDialler, Action<HandoverStream>? onClosed = null)
    {
        _relay = relay;
        Token = token;
        App = app;
        _isDialler = isDialler;
        _onClosed = onClosed;
    }

    /// <summary>The handover token (16 random bytes, hex), known only to the two ends.</summary>
    public string Token { get; }

    /// <summary>The app at the acceptor's end.</summary>
    public string App { get; }

    /// <summary>True once this end writes to the direct stream.</summary>
    public bool IsMoved => Volatile.Read(ref _writesSwitched);

    /// <summary>True once disposed or aborted.</summary>
    public bool IsClosed => Volatile.Read(ref _closed) != 0;

    /// <summary>
    /// Dialler: moves this stream to <paramref name="open"/>'s direct session. <paramref name="open"/> opens the
    /// direct mux stream with the given open data and returns it once the acceptor took it. False (the stream stays
    /// on the relay) when the acceptor refused or the open failed.
    /// </summary>
    public async Task<bool> HandOverAsync(Func<long, CancellationToken, Task<DuplexStream>> open, CancellationToken cancellationToken)
    {
        if (!_isDialler)
        {
            throw new InvalidOperationException("only the dialling end starts a handover");
        }

        await _writeLock.WaitAsync(cancellationToken);
        var attempt = new TaskCompletionSource<DuplexStream?>(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            if (_writesSwitched || IsClosed || (_writesCompleted && Volatile.Read(ref _readEnded)))
            {
                return false;
            }

            Volatile.Write(ref _handoverInFlight, attempt);
            DuplexStream direct;
            try
            {
                direct = await open(_written, cancellationToken);
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidOperationException or Sessions.Mux.MuxException or Sessions.SessionClosedException)
            {
                attempt.TrySetResult(null);
                return false;
            }

            _direct = direct;
            Volatile.Write(ref _writesSwitched, true);

            // The acceptor knows our relay count now: our end of stream on the relay means "switch", not "the end".
            if (_writesCompleted)
            {
                await direct.CompleteWritesAsync(cancellationToken);
            }
            else
            {
                await _relay.CompleteWritesAsync(cancellationToken);
            }

            RelayHalfDone();
            attempt.TrySetResult(direct);
            return true;
        }
        finally
        {
            attempt.TrySetResult(null);
            _writeLock.Release();
        }
    }

    /// <summary>
    /// Acceptor: the dialler opened <paramref name="direct"/> for this stream after writing <paramref name="sentOnRelay"/>
    /// bytes to the relay. Reading switches at that count; writing switches at once (in the background). False when
    /// this stream already moved.
    /// </summary>
    public bool AcceptHandover(DuplexStream direct, long sentOnRelay)
    {
        if (_isDialler || sentOnRelay < 0 || Interlocked.CompareExchange(ref _direct, direct, null) is not null)
        {
            return false;
        }

        Volatile.Write(ref _relayLimit, sentOnRelay);
        _ = SwitchAcceptorWritesAsync(direct);
        return true;
    }

    private async Task SwitchAcceptorWritesAsync(DuplexStream direct)
    {
        try
        {
            await _writeLock.WaitAsync();
            try
            {
                if (IsClosed)
                {
                    return;
                }

                var count = new byte[CountSize];
                BinaryPrimitives.WriteInt64BigEndian(count, _written);
                await direct.WriteAsync(count);
                Volatile.Write(ref _writesSwitched, true);
                if (_writesCompleted)
                {
                    await direct.CompleteWritesAsync();
                }
                else
                {
                    await _relay.CompleteWritesAsync();
                }
            }
            finally
            {
                _writeLock.Release();
            }

            RelayHalfDone();
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException)
        {
            Abort();
        }
    }

    /// <inheritdoc />
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_readingDirect)
        {
            return await _direct!.ReadAsync(buffer, cancellationToken);
        }

        if (_readEnded || buffer.IsEmpty)
        {
            return 0;
        }

        var limit = Volatile.Read(ref _relayLimit);
        if (limit >= 0 && _read == limit)
        {
            return await SwitchReadingAsync(buffer, cancellationToken);
        }

        var slice = limit >= 0 ? buffer[..(int)Math.Min(buffer.Length, limit - _read)] : buffer;
        var n = await _relay.ReadAsync(slice, cancellationToken);
        if (n > 0)
        {
            _read += n;
            return n;
        }

        return await SwitchReadingAsync(buffer, cancellationToken);
    }

    /// <summary>The relay is read up to the switch point (acceptor) or to its end (dialler): go on with the direct stream, or end.</summary>
    private async ValueTask<int> SwitchReadingAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        DuplexStream? direct;
        if (_isDialler)
        {
            // The relay ended. It is the switch only if our handover is in flight or done.
            direct = Volatile.Read(ref _handoverInFlight) is { } attempt ? await attempt.Task.WaitAsync(cancellationToken) : null;
            if (direct is null)
            {
                Volatile.Write(ref _readEnded, true);
                RelayHalfDone();
                return 0;
            }

            var count = new byte[CountSize];
            await direct.ReadExactlyAsync(count, cancellationToken);
            if (BinaryPrimitives.ReadInt64BigEndian(count) != _read)
            {
                Abort();
                throw new StreamAbortedException($"the stream's move to a direct link lost bytes: read {_read} on the relay, the peer sent {BinaryPrimitives.ReadInt64BigEndian(count)}");
            }
        }
        else
        {
            // Read up to the dialler's count: its end of stream on the relay must come next.
            var limit = Volatile.Read(ref _relayLimit);
            if (limit < 0)
            {
                Volatile.Write(ref _readEnded, true);
                RelayHalfDone();
                return 0;
            }

            if (_read != limit || await _relay.ReadAsync(new byte[1], cancellationToken) != 0)
            {
                Abort();
                throw new StreamAbortedException($"the stream's move to a direct link did not match: read {_read} on the relay, the peer sent {limit}");
            }

            direct = _direct!;
        }

        _readingDirect = true;
        RelayHalfDone();
        return await direct.ReadAsync(buffer, cancellationToken);
    }

    /// <summary>Both of the relay's directions ended (our end of stream sent, its end read): close it.</summary>
    private void RelayHalfDone()
    {
        if (Interlocked.Increment(ref _relayHalvesDone) == 2 && _direct is not null)
        {
            _ = _relay.DisposeAsync().AsTask();
        }
    }

    /// <inheritdoc />
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            await _writeLock.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            _writeCut = true;
            throw;
        }

        try
        {
            if (_writesSwitched)
            {
                await _direct!.WriteAsync(buffer, cancellationToken);
            }
            else
            {
                await _relay.WriteAsync(buffer, cancellationToken);
                _written += buffer.Length;
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            _writeCut = true;
            throw;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <inheritdoc />
    public override async ValueTask CompleteWritesAsync(CancellationToken cancellationToken = default)
    {
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            if (_writesCompleted)
            {
                return;
            }

            if (_writeCut)
            {
                // Finishing would pass a cut stream on as a complete one.
                Abort();
                throw new StreamAbortedException("a write on this stream did not finish; the stream was aborted");
            }

            _writesCompleted = true;
            await (_writesSwitched ? _direct! : _relay).CompleteWritesAsync(cancellationToken);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <inheritdoc />
    public override ValueTask WhenWritesAcknowledgedAsync(CancellationToken cancellationToken = default) =>
        (Volatile.Read(ref _writesSwitched) ? _direct! : _relay).WhenWritesAcknowledgedAsync(cancellationToken);

    /// <inheritdoc />
    public override void Abort()
    {
        _relay.Abort();
        Volatile.Read(ref _direct)?.Abort();
        Closed();
    }

    /// <inheritdoc />
    public override async ValueTask DisposeAsync()
    {
        if (IsClosed)
        {
            return;
        }

        if (_writeCut && !_writesCompleted)
        {
            // A write did not finish: the peer must not read a clean end after part of the data.
            _relay.Abort();
            Volatile.Read(ref _direct)?.Abort();
        }

        await _relay.DisposeAsync();
        if (Volatile.Read(ref _direct) is { } direct)
        {
            await direct.DisposeAsync();
        }

        Closed();
        await base.DisposeAsync();
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        base.Dispose(disposing);
    }

    private void Closed()
    {
        if (Interlocked.Exchange(ref _closed, 1) == 0)
        {
            _onClosed?.Invoke(this);
        }
    }
}
