using System.Net.Sockets;

namespace Skywire.Core.Streams;

/// <summary>
/// A connected TCP socket as a <see cref="DuplexStream"/>: <see cref="CompleteWritesAsync"/> sends a FIN
/// (<c>shutdown(SHUT_WR)</c>), <see cref="Abort"/> a RST and never a FIN first (<c>SO_LINGER {1, 0}</c>, then close,
/// without the <c>shutdown</c> that <see cref="NetworkStream"/>'s dispose performs), and disposing closes gracefully
/// unless a write did not finish (then it resets).
/// Owns the socket.
/// </summary>
/// <remarks>
/// <para>Only those two calls end the connection cleanly. From construction on the socket carries <c>SO_LINGER {1, 0}</c>,
/// so a close that is not ours (the process is killed, or exits without disposing the stream) resets the connection
/// instead of sending the FIN the kernel would otherwise send for it; the graceful dispose clears it first. Without
/// this, a node killed with SIGKILL while relaying a stream to an app made the app read a clean end of an incomplete
/// stream, and so did an app killed while writing one (issue 12.1).</para>
/// <para>A write that did not finish (it was cancelled, or it failed) leaves the stream incomplete: the caller's data
/// did not all go out, and some of it may have. From then on the stream cannot end cleanly: further writes and
/// <see cref="CompleteWritesAsync"/> throw, and disposing resets instead of sending a FIN, as it does while a write is
/// still pending. Without this, an app that gave up a transfer on a cancellation and left through <c>await using</c>
/// made its peer read a clean end after a prefix of the data (the soak test caught it at its own stop).</para>
/// <para>Why not a disposed <see cref="NetworkStream"/> with linger 0: its dispose calls <c>shutdown(SHUT_RDWR)</c> before
/// closing, so the peer receives a FIN before the RST and reads a clean end of stream (issue 12.1).</para>
/// </remarks>
public sealed class SocketStream : DuplexStream
{
    private readonly NetworkStream _stream;
    private int _writesCompleted;
    private int _closed;
    private int _writesPending;
    private int _writeCut;

    /// <summary>Wraps a connected stream socket; the stream owns it from now on.</summary>
    public SocketStream(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        Socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: false);
        SetLinger(socket, new LingerOption(true, 0));
    }

    /// <summary>The socket.</summary>
    public Socket Socket { get; }

    /// <summary>True once <see cref="Abort"/> ran (or the stream was disposed).</summary>
    public bool IsClosed => Volatile.Read(ref _closed) != 0;

    /// <inheritdoc/>
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        int read;
        try
        {
            read = await _stream.ReadAsync(buffer, cancellationToken);
        }
        catch (IOException ex) when (IsReset(ex))
        {
            throw new StreamAbortedException("the connection was reset by its peer", ex);
        }

        if (read == 0 && !buffer.IsEmpty && WasResetNotFinished())
        {
            throw new StreamAbortedException("the connection was reset by its peer (its error was reported to a concurrent write)");
        }

        return read;
    }

    /// <summary>
    /// Whether an end of stream just read is really a reset. The kernel reports a reset's error once, to whichever
    /// call on the socket comes first; when that is a concurrent write (the other direction of a relay), the read that
    /// follows returns 0 as for a FIN, and a broken stream would pass as a complete one (issue 12.1: a SOCKS exit sent
    /// its target a FIN before the RST). A FIN leaves the connection half-open (Linux <c>TCP_CLOSE_WAIT</c>) unless this
    /// side had finished its writes first (then it is closed either way, and no concurrent write can have taken the
    /// error); a reset closes it (<c>TCP_CLOSE</c>). Read from <c>TCP_INFO</c>'s first byte (<c>tcpi_state</c>); elsewhere
    /// than Linux, or when the socket cannot tell, an end of stream is taken as it comes.
    /// </summary>
    private bool WasResetNotFinished()
    {
        if (!OperatingSystem.IsLinux() || Volatile.Read(ref _writesCompleted) != 0)
        {
            return false;
        }

        try
        {
            Span<byte> info = stackalloc byte[8];
            return Socket.GetRawSocketOption(IpProtoTcp, TcpInfo, info) >= 1 && info[0] == TcpStateClose;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            return Volatile.Read(ref _closed) != 0;
        }
    }

    private const int IpProtoTcp = 6;
    private const int TcpInfo = 11;
    private const byte TcpStateClose = 7;

    /// <inheritdoc/>
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (Volatile.Read(ref _writesCompleted) != 0)
        {
            throw new InvalidOperationException("Writes were completed on this stream.");
        }

        ThrowIfWriteCut();
        Interlocked.Increment(ref _writesPending);
        try
        {
            await _stream.WriteAsync(buffer, cancellationToken);
        }
        catch (Exception ex)
        {
            Volatile.Write(ref _writeCut, 1);
            if (ex is IOException io && IsReset(io))
            {
                throw new StreamAbortedException("the connection was reset by its peer", ex);
            }

            throw;
        }
        finally
        {
            Interlocked.Decrement(ref _writesPending);
        }
    }

    /// <summary>True when a write did not finish or one is still pending: the stream can only end as a failure.</summary>
    private bool IsWriteCut => Volatile.Read(ref _writeCut) != 0 || Volatile.Read(ref _writesPending) != 0;

    private void ThrowIfWriteCut()
    {
        if (Volatile.Read(ref _writeCut) != 0)
        {
            throw new IOException("an earlier write on this stream did not finish (cancelled or failed): the stream is incomplete and can only be aborted");
        }
    }

    /// <inheritdoc/>
    public override ValueTask CompleteWritesAsync(CancellationToken cancellationToken = default)
    {
        if (IsWriteCut && Volatile.Read(ref _writesCompleted) == 0)
        {
            // Finishing now would pass a cut stream on as a complete one: reset it instead.
            Abort();
            ThrowIfWriteCut();
            throw new IOException("a write is still pending on this stream: its writes cannot be finished; the stream was aborted");
        }

        if (Interlocked.Exchange(ref _writesCompleted, 1) == 0)
        {
            try
            {
                Socket.Shutdown(SocketShutdown.Send);
            }
            catch (SocketException ex)
            {
                throw new IOException("cannot finish the connection's writes: " + ex.Message, ex);
            }
            catch (ObjectDisposedException ex)
            {
                throw new IOException("the connection is closed", ex);
            }
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc/>
    public override void Abort()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }

        // Close with a zero timeout: SO_LINGER {1, 0} and close(2), so the peer gets a RST and no FIN before it.
        // (A pending operation is unblocked by disconnecting, which also resets.)
        Socket.Close(0);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing && IsWriteCut && Volatile.Read(ref _writesCompleted) == 0)
        {
            // A write did not finish: the peer must not read a clean end after part of the data.
            Abort();
        }

        if (disposing && Interlocked.Exchange(ref _closed, 1) == 0)
        {
            // A graceful close: FIN after what was written (if not sent already), then release the socket.
            try
            {
                if (Interlocked.Exchange(ref _writesCompleted, 1) == 0)
                {
                    Socket.Shutdown(SocketShutdown.Send);
                }
            }
            catch (SocketException)
            {
                // The peer is gone already; closing is all that is left to do.
            }

            SetLinger(Socket, new LingerOption(false, 0));
            Socket.Dispose();
        }

        base.Dispose(disposing);
    }

    private static void SetLinger(Socket socket, LingerOption linger)
    {
        try
        {
            socket.LingerState = linger;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Closed or reset already: there is no close left to shape.
        }
    }

    private static bool IsReset(IOException ex) =>
        ex.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset or SocketError.ConnectionAborted or SocketError.Shutdown };
}
