using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Viscript.Signal.Protocol;

namespace Viscript.Signal.Internal;

/// <summary>Why a connection ended, for diagnostics and metrics.</summary>
internal enum ConnectionCloseKind
{
    None = 0,
    PeerClosed = 10,
    Truncated = 20,
    ProtocolViolation = 30,
    Idle = 40,
    /// <summary>The peer did not register within the server's registration deadline.</summary>
    Deadline = 45,
    Error = 50,
    Stopped = 60,
    /// <summary>Closed by our own decision (refused, replaced, write failure); the cause was reported already.</summary>
    Local = 70,
}

/// <summary>
/// One TCP connection speaking the skycoin/net framing: a read loop over a <see cref="PipeReader"/> and serialised
/// writes with a per-direction sequence number. Used by both the server and the client.
/// </summary>
internal sealed class SignalConnection : IAsyncDisposable
{
    /// <summary>A write that cannot finish in this time means the peer stopped reading: the connection is dropped.</summary>
    private static readonly TimeSpan WriteTimeout = TimeSpan.FromSeconds(30);

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _reader;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly ArrayBufferWriter<byte> _writeBuffer = new(256);
    private readonly CancellationTokenSource _closed = new();
    private uint _nextSeq;
    private int _disposed;

    /// <summary>Sequence number of the last NORMAL frame written (0 before the first).</summary>
    public uint LastSentSeq => Volatile.Read(ref _nextSeq);

    private readonly string _side;

    public SignalConnection(Socket socket, string side)
    {
        _side = side;
        _socket = socket;
        _socket.NoDelay = true; // reference §4.7: without it every small reply waits ~40 ms for a delayed ACK
        RemoteEndPoint = socket.RemoteEndPoint ?? new IPEndPoint(IPAddress.None, 0);
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 4096, minimumReadSize: 1024, leaveOpen: true));
    }

    public EndPoint RemoteEndPoint { get; }

    /// <summary>Cancelled once the connection is closed (by either side).</summary>
    public CancellationToken Closed => _closed.Token;

    public bool IsClosed => _closed.IsCancellationRequested;

    /// <summary>Why the connection ended, once it has.</summary>
    public string? CloseReason { get; private set; }

    /// <summary>Category of <see cref="CloseReason"/>.</summary>
    public ConnectionCloseKind CloseKind { get; private set; }

    public Task SendNormalAsync(byte op, ReadOnlyMemory<byte> json, CancellationToken cancellationToken = default) =>
        SendAsync(SignalFrameType.Normal, op, json, 0, cancellationToken);

    public Task SendAckAsync(uint seq, CancellationToken cancellationToken = default) =>
        SendAsync(SignalFrameType.Ack, 0, default, seq, cancellationToken);

    public Task SendPingAsync(ulong timestamp, CancellationToken cancellationToken = default) =>
        SendAsync(SignalFrameType.Ping, 0, default, timestamp, cancellationToken);

    public Task SendPongAsync(ulong timestamp, CancellationToken cancellationToken = default) =>
        SendAsync(SignalFrameType.Pong, 0, default, timestamp, cancellationToken);

    /// <summary>Sends a NORMAL frame with an arbitrary body (tests use it to send malformed messages).</summary>
    public Task SendRawNormalAsync(ReadOnlyMemory<byte> body, CancellationToken cancellationToken = default) =>
        SendAsync((SignalFrameType)0, 0, body, 0, cancellationToken);

    private async Task SendAsync(SignalFrameType type, byte op, ReadOnlyMemory<byte> payload, ulong value, CancellationToken cancellationToken)
    {
        if (IsClosed)
        {
            throw new IOException("connection closed");
        }

        await _writeLock.WaitAsync(cancellationToken);
        var started = false;
        try
        {
            _writeBuffer.ResetWrittenCount();
            switch (type)
            {
                case SignalFrameType.Normal:
                    SignalFrameWriter.WriteNormal(_writeBuffer, ++_nextSeq, op, payload.Span);
                    break;
                case SignalFrameType.Ack:
                    SignalFrameWriter.WriteAck(_writeBuffer, (uint)value);
                    break;
                case SignalFrameType.Ping:
                    SignalFrameWriter.WritePing(_writeBuffer, value);
                    break;
                case SignalFrameType.Pong:
                    SignalFrameWriter.WritePong(_writeBuffer, value);
                    break;
                default:
                    SignalFrameWriter.WriteNormalRaw(_writeBuffer, ++_nextSeq, payload.Span);
                    break;
            }

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _closed.Token);
            timeout.CancelAfter(WriteTimeout);
            started = true;
            await _stream.WriteAsync(_writeBuffer.WrittenMemory, timeout.Token);
            SignalMetrics.FramesSent.Add(1, new("side", _side), new("type", SignalMetrics.TypeName(type == 0 ? SignalFrameType.Normal : type)));
        }
        catch (Exception ex) when (started && ex is OperationCanceledException or IOException or ObjectDisposedException or SocketException)
        {
            // A half-written frame desynchronises the stream: nothing more can be sent on it.
            Abort(ex is OperationCanceledException && !cancellationToken.IsCancellationRequested ? "write timed out" : "write failed: " + ex.Message,
                ConnectionCloseKind.Error);
            if (ex is OperationCanceledException && cancellationToken.IsCancellationRequested)
            {
                throw;
            }

            throw new IOException("connection closed", ex);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>
    /// Reads frames until the peer closes, a protocol violation, the idle timeout or cancellation, then closes the
    /// connection. <paramref name="onFrame"/> sees each frame while its body is still valid. Returns the close reason.
    /// The idle timer restarts on every <em>complete</em> frame, not on every byte: a peer that drips a frame one
    /// byte at a time is closed when the timeout runs out, however steadily it drips.
    /// </summary>
    /// <param name="onFrame">Frame handler.</param>
    /// <param name="maxBodySize">Largest NORMAL body accepted, asked before each frame (the server's limit depends on the connection's state).</param>
    /// <param name="idleTimeout">Longest time without a complete frame.</param>
    /// <param name="timeProvider">Clock of the idle timer.</param>
    /// <param name="cancellationToken">Stops the loop.</param>
    public async Task<string> RunReadLoopAsync(
        Func<SignalFrame, ValueTask> onFrame,
        Func<int> maxBodySize,
        TimeSpan idleTimeout,
        TimeProvider timeProvider,
        CancellationToken cancellationToken)
    {
        string reason;
        var kind = ConnectionCloseKind.PeerClosed;
        var idleArmed = idleTimeout > TimeSpan.Zero && idleTimeout != Timeout.InfiniteTimeSpan;
        var idle = idleArmed ? new CancellationTokenSource(idleTimeout, timeProvider) : new CancellationTokenSource();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, idle.Token, _closed.Token);
        try
        {
            while (true)
            {
                var result = await _reader.ReadAsync(linked.Token);
                var buffer = result.Buffer;
                try
                {
                    while (SignalFrameReader.TryReadFrame(ref buffer, maxBodySize(), out var frame))
                    {
                        // Re-armed before the handler runs, so that its reply goes out under a fresh deadline.
                        if (idleArmed && !idle.IsCancellationRequested)
                        {
                            idle.CancelAfter(idleTimeout);
                        }

                        SignalMetrics.FramesReceived.Add(1, new("side", _side), new("type", SignalMetrics.TypeName(frame.Type)));
                        await onFrame(frame);
                    }
                }
                finally
                {
                    // Only consumed frames are released; a partial frame stays for the next read.
                    _reader.AdvanceTo(buffer.Start, buffer.End);
                }

                if (result.IsCompleted)
                {
                    kind = buffer.IsEmpty ? ConnectionCloseKind.PeerClosed : ConnectionCloseKind.Truncated;
                    reason = buffer.IsEmpty ? "closed by peer" : $"closed by peer in the middle of a frame ({buffer.Length} bytes pending)";
                    break;
                }
            }
        }
        catch (SignalProtocolException ex)
        {
            kind = ConnectionCloseKind.ProtocolViolation;
            reason = "protocol violation: " + ex.Message;
        }
        catch (OperationCanceledException) when (_closed.IsCancellationRequested)
        {
            kind = CloseKind;
            reason = CloseReason ?? "closed";
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            kind = ConnectionCloseKind.Stopped;
            reason = "stopped";
        }
        catch (OperationCanceledException) when (idle.IsCancellationRequested)
        {
            kind = ConnectionCloseKind.Idle;
            reason = $"idle for {idleTimeout.TotalSeconds:0.#} s";
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            kind = CloseReason is null ? ConnectionCloseKind.Error : CloseKind;
            reason = CloseReason ?? "connection error: " + ex.Message;
        }
        finally
        {
            idle.Dispose();
        }

        Abort(reason, kind);
        SignalMetrics.ConnectionsClosed.Add(1, new("side", _side), new("reason", CloseKind.ToString()));
        return CloseReason ?? reason;
    }

    /// <summary>Closes the connection now; the first reason given wins.</summary>
    public void Abort(string reason, ConnectionCloseKind kind = ConnectionCloseKind.Local)
    {
        lock (_closed)
        {
            if (_closed.IsCancellationRequested)
            {
                return;
            }

            CloseReason = reason;
            CloseKind = kind;
            _closed.Cancel();
        }

        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Already gone.
        }

        _socket.Close();
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Abort("disposed", ConnectionCloseKind.Stopped);
        await _reader.CompleteAsync();
        await _stream.DisposeAsync();
    }

    /// <summary>Copies a JSON body out of the receive buffer and parses it (null when not valid JSON).</summary>
    public static JsonElement? TryParseJson(ReadOnlySequence<byte> json) =>
        SignalJson.TryParse(json, out var element) ? element : null;
}
