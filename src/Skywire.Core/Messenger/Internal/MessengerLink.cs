using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Channels;
using Skywire.Protocol.Framing;
using Skywire.Protocol.Messenger;

namespace Skywire.Core.Messenger.Internal;

/// <summary>Handles one inbound request or notification, inline on the read loop (must not block; copy what it keeps).</summary>
internal delegate void LinkFrameHandler(byte opcode, uint requestId, ReadOnlySpan<byte> payload);

/// <summary>Called with the response (or Error, or a synthesized Error when the link closes) to a request this side sent.</summary>
internal delegate void LinkResponseHandler(byte opcode, ReadOnlySpan<byte> payload);

/// <summary>
/// One messenger connection's framing (shared frame shape, <see cref="FrameCodec"/>) over an authenticated stream.
/// Unlike the control channel's request loop, frames are dispatched in order and inline (the relay's ordering and
/// its circuits depend on it), and outbound frames go through an unbounded queue drained by one writer that batches
/// them into few records; callers bound what they put in it (message bytes by <see cref="TryEnqueueBounded"/>,
/// stream bytes by the circuit windows). A malformed frame closes this link only.
/// </summary>
internal sealed partial class MessengerLink : IAsyncDisposable
{
    private const int BatchSize = 64 * 1024;

    private readonly Stream _stream;
    private readonly PipeReader _reader;
    private readonly Channel<(byte[] Buffer, int Length)> _outbound = Channel.CreateUnbounded<(byte[], int)>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ConcurrentDictionary<uint, LinkResponseHandler> _pending = new();
    private readonly CancellationTokenSource _cts = new();
    private readonly TaskCompletionSource<ConnectionCloseReason> _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ILogger _logger;
    private readonly int _maxFrameSize;
    private readonly Lock _roomLock = new();
    private TaskCompletionSource _room = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private LinkFrameHandler? _handler;
    private Task? _readLoop;
    private Task? _writeLoop;
    private long _queuedBytes;
    private int _queuedFrames;
    private long _readPauses;
    private long _lastReadTimestamp;
    private int _nextId;
    private int _disposed;

    public MessengerLink(Stream stream, string peerName, ILogger? logger, int maxFrameSize = MessengerProtocol.MaxFrameSize)
    {
        _stream = stream;
        PeerName = peerName;
        _logger = logger ?? NullLogger.Instance;
        _maxFrameSize = maxFrameSize;
        _reader = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024, leaveOpen: true));
        _lastReadTimestamp = Environment.TickCount64;
    }

    public string PeerName { get; }

    /// <summary>Completes with the reason once the link is closed.</summary>
    public Task<ConnectionCloseReason> Closed => _closed.Task;

    /// <summary>Cancelled when the link closes.</summary>
    public CancellationToken Closing => _cts.Token;

    /// <summary>Bytes queued and not yet written.</summary>
    public long QueuedBytes => Interlocked.Read(ref _queuedBytes);

    /// <summary>Frames queued and not yet written.</summary>
    public int QueuedFrames => Volatile.Read(ref _queuedFrames);

    /// <summary>
    /// When set, the read loop stops reading while more than this many bytes (or <see cref="PauseReadingAboveFrames"/>
    /// frames) are queued toward the peer, and goes on once they are written: a peer that pipelines requests without
    /// reading the answers backs up its own TCP writes instead of growing this side's queue (issue 12.7). Only one
    /// side of a link may pause (the server's side; the client's and the opener's read loops always read), so two
    /// links can never wait for each other.
    /// </summary>
    public long? PauseReadingAboveBytes { get; init; }

    /// <summary>With <see cref="PauseReadingAboveBytes"/>: queued frames beyond which reading pauses too (default 4096).</summary>
    public int PauseReadingAboveFrames { get; init; } = 4096;

    /// <summary>How many times the read loop paused because the peer did not read its answers.</summary>
    public long ReadPauses => Interlocked.Read(ref _readPauses);

    /// <summary>Milliseconds (Environment.TickCount64) of the last frame read.</summary>
    public long LastReadTick => Interlocked.Read(ref _lastReadTimestamp);

    /// <summary>Set to observe every inbound frame (diagnostics and tests: what the messenger sees).</summary>
    public Action<byte, ReadOnlyMemory<byte>>? Tap { get; set; }

    /// <summary>Reads the first frame before the loops start (the hello).</summary>
    public Task<(byte Opcode, uint RequestId, byte[] Payload)> ReadFirstFrameAsync(CancellationToken cancellationToken) =>
        FramedStreamLifecycle.ReadFirstFrameAsync(_reader, _maxFrameSize, cancellationToken);

    /// <summary>Starts the read and write loops.</summary>
    public void Start(LinkFrameHandler handler)
    {
        _handler = handler;
        _writeLoop = Task.Run(WriteLoopAsync);
        _readLoop = Task.Run(ReadLoopAsync);
    }

    /// <summary>Queues a frame; false when the link is closed.</summary>
    public bool Enqueue(byte opcode, uint requestId, ReadOnlySpan<byte> payload) => Enqueue(opcode, requestId, payload, []);

    /// <summary>Queues a frame whose payload is <paramref name="prefix"/> followed by <paramref name="body"/>; false when the link is closed.</summary>
    public bool Enqueue(byte opcode, uint requestId, ReadOnlySpan<byte> prefix, ReadOnlySpan<byte> body)
    {
        if (_closed.Task.IsCompleted)
        {
            return false;
        }

        var payloadLength = prefix.Length + body.Length;
        var length = FrameCodec.HeaderSize + payloadLength;
        var buffer = ArrayPool<byte>.Shared.Rent(length);
        FrameCodec.WriteHeader(buffer, opcode, requestId, payloadLength);
        prefix.CopyTo(buffer.AsSpan(FrameCodec.HeaderSize));
        body.CopyTo(buffer.AsSpan(FrameCodec.HeaderSize + prefix.Length));
        Interlocked.Add(ref _queuedBytes, length);
        Interlocked.Increment(ref _queuedFrames);
        if (!_outbound.Writer.TryWrite((buffer, length)))
        {
            Interlocked.Add(ref _queuedBytes, -length);
            Interlocked.Decrement(ref _queuedFrames);
            ArrayPool<byte>.Shared.Return(buffer);
            return false;
        }

        return true;
    }

    /// <summary>Queues a frame unless more than <paramref name="limit"/> bytes are already queued (a peer that does not read).</summary>
    public bool TryEnqueueBounded(byte opcode, uint requestId, ReadOnlySpan<byte> prefix, ReadOnlySpan<byte> body, long limit) =>
        QueuedBytes <= limit && Enqueue(opcode, requestId, prefix, body);

    /// <summary>Waits until at most <paramref name="limit"/> bytes are queued (sender-side back-pressure).</summary>
    public async ValueTask WaitForRoomAsync(long limit, CancellationToken cancellationToken)
    {
        while (QueuedBytes > limit && !_closed.Task.IsCompleted)
        {
            Task room;
            lock (_roomLock)
            {
                room = _room.Task;
            }

            if (QueuedBytes <= limit)
            {
                return;
            }

            await room.WaitAsync(cancellationToken);
        }
    }

    private bool OutboundFull => PauseReadingAboveBytes is { } bytes && (QueuedBytes > bytes || QueuedFrames > PauseReadingAboveFrames);

    private async Task WaitForOutboundRoomAsync()
    {
        while (OutboundFull && !_closed.Task.IsCompleted)
        {
            Task room;
            lock (_roomLock)
            {
                room = _room.Task;
            }

            if (!OutboundFull)
            {
                return;
            }

            await room.WaitAsync(_cts.Token);
        }
    }

    /// <summary>Queues a JSON response to a request.</summary>
    public void Respond<T>(byte requestOpcode, uint requestId, T message, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
    {
        if (requestId != 0)
        {
            Enqueue((byte)(requestOpcode | FrameCodec.ResponseBit), requestId, JsonSerializer.SerializeToUtf8Bytes(message, type));
        }
    }

    /// <summary>Queues an Error response.</summary>
    public void RespondError(uint requestId, MessengerErrorCode code, string message)
    {
        if (requestId != 0)
        {
            Enqueue((byte)MessengerOpcode.Error, requestId, ErrorPayload(code, message));
        }
    }

    public static byte[] ErrorPayload(MessengerErrorCode code, string message) =>
        JsonSerializer.SerializeToUtf8Bytes(new MessengerError { Code = code, Message = message }, MessengerJsonContext.Default.MessengerError);

    /// <summary>Registers a callback for the response to a request id this side is about to send. Returns the id.</summary>
    public uint RegisterPending(LinkResponseHandler onResponse)
    {
        while (true)
        {
            var id = (uint)Interlocked.Increment(ref _nextId);
            if (id != 0 && _pending.TryAdd(id, onResponse))
            {
                if (_closed.Task.IsCompleted && _pending.TryRemove(id, out _))
                {
                    onResponse((byte)MessengerOpcode.Error, ErrorPayload(MessengerErrorCode.Unavailable, $"connection to {PeerName} is closed"));
                }

                return id;
            }
        }
    }

    /// <summary>Forgets a pending request (timed out); true if it was still pending.</summary>
    public bool CancelPending(uint id) => _pending.TryRemove(id, out _);

    /// <summary>Sends a request and waits for its response payload.</summary>
    /// <exception cref="MessengerException">Error response, closed link, or timeout.</exception>
    public async Task<byte[]> RequestAsync(byte opcode, ReadOnlyMemory<byte> payload, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var tcs = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        var id = RegisterPending((op, body) =>
        {
            if (op == (byte)MessengerOpcode.Error)
            {
                tcs.TrySetException(ToException(body));
            }
            else if (op != (opcode | FrameCodec.ResponseBit))
            {
                tcs.TrySetException(new MessengerException(MessengerErrorCode.Internal, $"unexpected response opcode 0x{op:x2} to 0x{opcode:x2}"));
            }
            else
            {
                tcs.TrySetResult(body.ToArray());
            }
        });
        Enqueue(opcode, id, payload.Span);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            return await tcs.Task.WaitAsync(deadline.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new MessengerException(MessengerErrorCode.Unavailable, $"{PeerName} did not answer 0x{opcode:x2} within {timeout.TotalSeconds:0.#} s");
        }
        finally
        {
            _pending.TryRemove(id, out _);
        }
    }

    /// <summary>Turns an Error payload into an exception.</summary>
    public static MessengerException ToException(ReadOnlySpan<byte> body)
    {
        MessengerError? error = null;
        try
        {
            error = JsonSerializer.Deserialize(body, MessengerJsonContext.Default.MessengerError);
        }
        catch (JsonException)
        {
        }

        return new MessengerException(error?.Code ?? MessengerErrorCode.Internal, error?.Message ?? "error");
    }

    private async Task ReadLoopAsync()
    {
        var (reason, detail) = FramedStreamLifecycle.EndOfStream(0);
        byte[]? scratch = null;
        var paused = false;
        try
        {
            while (!_cts.IsCancellationRequested)
            {
                var result = await _reader.ReadAsync(_cts.Token);
                var buffer = result.Buffer;
                Interlocked.Exchange(ref _lastReadTimestamp, Environment.TickCount64);
                while (FrameCodec.TryReadFrame(ref buffer, _maxFrameSize, out var frame))
                {
                    ReadOnlySpan<byte> payload;
                    if (frame.Payload.IsSingleSegment)
                    {
                        payload = frame.Payload.FirstSpan;
                    }
                    else
                    {
                        if (scratch is null || scratch.Length < frame.Payload.Length)
                        {
                            if (scratch is not null)
                            {
                                ArrayPool<byte>.Shared.Return(scratch);
                            }

                            scratch = ArrayPool<byte>.Shared.Rent((int)frame.Payload.Length);
                        }

                        frame.Payload.CopyTo(scratch);
                        payload = scratch.AsSpan(0, (int)frame.Payload.Length);
                    }

                    Dispatch(frame.Opcode, frame.RequestId, payload);
                    if (_closed.Task.IsCompleted)
                    {
                        break;
                    }

                    if (OutboundFull)
                    {
                        paused = true;
                        break;
                    }
                }

                if (_closed.Task.IsCompleted)
                {
                    return;
                }

                if (paused)
                {
                    // Stop reading until the answers are written (the frames not yet handled stay in the pipe).
                    paused = false;
                    _reader.AdvanceTo(buffer.Start);
                    Interlocked.Increment(ref _readPauses);
                    await WaitForOutboundRoomAsync();
                    continue;
                }

                if (result.IsCompleted)
                {
                    (reason, detail) = FramedStreamLifecycle.EndOfStream(buffer.Length);
                    break;
                }

                _reader.AdvanceTo(buffer.Start, buffer.End);
            }
        }
        catch (JsonException ex)
        {
            reason = ConnectionCloseReason.ProtocolViolation;
            detail = "malformed JSON payload: " + ex.Message;
        }
        catch (Exception ex) when (FramedStreamLifecycle.TryClassify(ex, _cts.IsCancellationRequested, out reason, out detail))
        {
        }
        catch (Exception ex)
        {
            Log.HandlerFailed(_logger, PeerName, ex);
            reason = ConnectionCloseReason.TransportError;
            detail = "internal error: " + ex.Message;
        }
        finally
        {
            if (scratch is not null)
            {
                ArrayPool<byte>.Shared.Return(scratch);
            }
        }

        Fail(reason, detail);
    }

    private void Dispatch(byte opcode, uint requestId, ReadOnlySpan<byte> payload)
    {
        Tap?.Invoke(opcode, payload.ToArray());
        if ((opcode & FrameCodec.ResponseBit) != 0)
        {
            if (requestId != 0 && _pending.TryRemove(requestId, out var handler))
            {
                handler(opcode, payload);
            }

            // A response nobody waits for (late, after a timeout) is dropped: never an error.
            return;
        }

        _handler!(opcode, requestId, payload);
    }

    private async Task WriteLoopAsync()
    {
        var batch = new byte[BatchSize];
        var reader = _outbound.Reader;
        try
        {
            while (await reader.WaitToReadAsync(_cts.Token))
            {
                while (reader.TryRead(out var item))
                {
                    var written = 0;
                    var frames = 1;
                    if (item.Length >= BatchSize)
                    {
                        await _stream.WriteAsync(item.Buffer.AsMemory(0, item.Length), _cts.Token);
                        written = item.Length;
                        ArrayPool<byte>.Shared.Return(item.Buffer);
                    }
                    else
                    {
                        var used = 0;
                        while (true)
                        {
                            item.Buffer.AsSpan(0, item.Length).CopyTo(batch.AsSpan(used));
                            used += item.Length;
                            ArrayPool<byte>.Shared.Return(item.Buffer);
                            if (!reader.TryPeek(out var next) || used + next.Length > BatchSize)
                            {
                                break;
                            }

                            reader.TryRead(out item);
                            frames++;
                        }

                        await _stream.WriteAsync(batch.AsMemory(0, used), _cts.Token);
                        written = used;
                    }

                    Interlocked.Add(ref _queuedBytes, -written);
                    Interlocked.Add(ref _queuedFrames, -frames);
                    if (PauseReadingAboveBytes is not null)
                    {
                        SignalRoom();
                    }
                }

                await _stream.FlushAsync(_cts.Token);
                SignalRoom();
            }
        }
        catch (OperationCanceledException) when (_cts.IsCancellationRequested)
        {
        }
        catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException or ObjectDisposedException or NotSupportedException)
        {
            Fail(ConnectionCloseReason.TransportError, "write failed: " + ex.Message);
        }
        finally
        {
            while (reader.TryRead(out var item))
            {
                ArrayPool<byte>.Shared.Return(item.Buffer);
            }

            SignalRoom();
        }
    }

    private void SignalRoom()
    {
        TaskCompletionSource room;
        lock (_roomLock)
        {
            room = _room;
            _room = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        room.TrySetResult();
    }

    /// <summary>Closes the link with a reason (logged once); pending requests fail with Unavailable.</summary>
    public void Fail(ConnectionCloseReason reason, string detail)
    {
        if (!_closed.TrySetResult(reason))
        {
            return;
        }

        if (reason == ConnectionCloseReason.ProtocolViolation)
        {
            Log.ProtocolViolation(_logger, PeerName, detail);
        }
        else
        {
            Log.Closed(_logger, PeerName, reason, detail);
        }

        _outbound.Writer.TryComplete();
        FramedStreamLifecycle.Teardown(_cts, _stream);
        var error = ErrorPayload(MessengerErrorCode.Unavailable, $"connection to {PeerName} closed");
        foreach (var id in _pending.Keys)
        {
            if (_pending.TryRemove(id, out var handler))
            {
                handler((byte)MessengerOpcode.Error, error);
            }
        }

        SignalRoom();
    }

    /// <summary>Writes what is queued (bounded by <paramref name="timeout"/>), then closes.</summary>
    public async Task DrainAndCloseAsync(TimeSpan timeout, string detail)
    {
        _outbound.Writer.TryComplete();
        if (_writeLoop is not null)
        {
            await Task.WhenAny(_writeLoop, Task.Delay(timeout));
        }

        Fail(ConnectionCloseReason.LocalClosed, detail);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Fail(ConnectionCloseReason.LocalClosed, "disposed");
        await FramedStreamLifecycle.JoinAsync(ex => Log.LoopFailed(_logger, PeerName, ex), _readLoop, _writeLoop);

        await _reader.CompleteAsync();
        _cts.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 3001, Level = LogLevel.Warning, Message = "Messenger connection {Peer} closed: protocol violation: {Detail}")]
        public static partial void ProtocolViolation(ILogger logger, string peer, string detail);

        [LoggerMessage(EventId = 3002, Level = LogLevel.Debug, Message = "Messenger connection {Peer} closed ({Reason}): {Detail}")]
        public static partial void Closed(ILogger logger, string peer, ConnectionCloseReason reason, string detail);

        [LoggerMessage(EventId = 3003, Level = LogLevel.Error, Message = "Messenger frame handler for {Peer} failed")]
        public static partial void HandlerFailed(ILogger logger, string peer, Exception exception);

        [LoggerMessage(EventId = 3004, Level = LogLevel.Error, Message = "Messenger connection {Peer}: a loop failed")]
        public static partial void LoopFailed(ILogger logger, string peer, Exception exception);
    }
}
