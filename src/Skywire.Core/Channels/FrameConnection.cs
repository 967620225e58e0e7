using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Protocol.Control;
using Skywire.Protocol.Framing;

namespace Skywire.Core.Channels;

/// <summary>Handles one request frame; returns the response payload (serialized) or throws <see cref="ControlException"/>.</summary>
/// <param name="opcode">The request opcode.</param>
/// <param name="payload">A copy of the payload (owned by the handler).</param>
/// <param name="cancellationToken">Cancelled when the connection closes.</param>
public delegate ValueTask<byte[]> FrameRequestHandler(byte opcode, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken);

/// <summary>Why a framed connection ended.</summary>
public enum ConnectionCloseReason
{
    /// <summary>Still open.</summary>
    None = 0,
    /// <summary>The peer closed the stream.</summary>
    RemoteClosed = 10,
    /// <summary>Closed by this side.</summary>
    LocalClosed = 20,
    /// <summary>The peer broke the protocol (bad frame, bad payload, failed decryption).</summary>
    ProtocolViolation = 30,
    /// <summary>The peer stopped answering.</summary>
    Timeout = 40,
    /// <summary>A socket error.</summary>
    TransportError = 50,
}

/// <summary>A request failed with a protocol error code (received as an Error frame or raised by a handler).</summary>
public sealed class ControlException : Exception
{
    public ControlException(ControlErrorCode code, string message) : base(message) => Code = code;
    public ControlException() : this(ControlErrorCode.Internal, "control request failed") { }
    public ControlException(string message) : this(ControlErrorCode.Internal, message) { }
    public ControlException(string message, Exception inner) : base(message, inner) => Code = ControlErrorCode.Internal;
    public ControlException(ControlErrorCode code, string message, Exception inner) : base(message, inner) => Code = code;

    /// <summary>
    /// The manager hung up during the handshake: what a manager with another key does (it cannot read our first
    /// message), but also what an overloaded listener may do. Reported as <see cref="ControlErrorCode.Forbidden"/>.
    /// </summary>
    public bool IsHandshakeHangUp => InnerException is Crypto.Noise.NoiseException { InnerException: EndOfStreamException or IOException };

    /// <summary>The stable error code.</summary>
    public ControlErrorCode Code { get; }
}

/// <summary>
/// Request/response over a framed byte stream (<see cref="FrameCodec"/>), full duplex: one read loop parses frames
/// and completes pending requests or queues incoming requests for a handler, run concurrently (so a slow handler never
/// stalls the loop) up to <see cref="MaxConcurrentRequests"/>; when the queue is full too, the loop stops reading
/// (backpressure). Writes are serialized. A malformed frame closes this connection only, with a logged reason.
/// </summary>
public sealed partial class FrameConnection : IAsyncDisposable
{
    private readonly Stream _stream;
    private readonly PipeReader _reader;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly ConcurrentDictionary<uint, TaskCompletionSource<(byte Opcode, byte[] Payload)>> _pending = new();
    private readonly CancellationTokenSource _cts = new();
    private readonly ILogger _logger;
    private readonly int _maxFrameSize;
    private readonly TaskCompletionSource<ConnectionCloseReason> _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Channel<(byte Opcode, uint RequestId, byte[] Payload)> _requests;
    private FrameRequestHandler? _handler;
    private Task? _loop;
    private Task? _dispatcher;
    private readonly Lock _requestRoomLock = new();
    private TaskCompletionSource _requestRoom = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _requestBytes;
    private int _nextId;
    private int _disposed;

    /// <param name="stream">The (already authenticated) duplex stream; owned and disposed by this connection.</param>
    /// <param name="peerName">Shown in logs (e.g. the peer key).</param>
    /// <param name="logger">Logger for close reasons.</param>
    /// <param name="maxFrameSize">Largest payload accepted.</param>
    public FrameConnection(Stream stream, string peerName, ILogger? logger = null, int maxFrameSize = ControlProtocol.MaxFrameSize)
    {
        _stream = stream;
        PeerName = peerName;
        _logger = logger ?? NullLogger.Instance;
        _maxFrameSize = maxFrameSize;
        _reader = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024, leaveOpen: true));
        Closing = _cts.Token;
        _requests = Channel.CreateBounded<(byte, uint, byte[])>(new BoundedChannelOptions(MaxQueuedRequests) { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });
    }

    /// <summary>Who is at the other end (for logs).</summary>
    public string PeerName { get; }

    /// <summary>Requests (and notifications) from the peer handled at once (default 64).</summary>
    public int MaxConcurrentRequests { get; init; } = 64;

    /// <summary>
    /// Requests read and waiting for a handler slot (default 256). When they are full the read loop stops reading:
    /// the peer's writes back up (TCP backpressure) instead of this side starting unbounded handlers. Responses are
    /// read as long as the queue has room, so a handler waiting for the peer's answer does not block its own slot.
    /// </summary>
    public const int MaxQueuedRequests = 256;

    /// <summary>
    /// Payload bytes of requests read and not yet handled (queued or running) beyond which the read loop stops reading
    /// too (4 MiB; the request that crosses it is still taken, so at most this plus one frame is held). Without it,
    /// <see cref="MaxQueuedRequests"/> + <see cref="MaxConcurrentRequests"/> frames of 1 MiB each, pipelined by a peer that
    /// does not read the answers, pinned over 300 MiB per connection (issue 12.7).
    /// </summary>
    public const long MaxQueuedRequestBytes = 4L * 1024 * 1024;

    /// <summary>Payload bytes of requests read and not yet handled (diagnostics and tests).</summary>
    public long QueuedRequestBytes => Interlocked.Read(ref _requestBytes);

    /// <summary>How long a request waits for its response.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Completes with the reason once the connection is closed.</summary>
    public Task<ConnectionCloseReason> Closed => _closed.Task;

    /// <summary>Cancelled when the connection closes.</summary>
    /// <remarks>Taken once at construction: it stays readable (and cancelled) after the connection is disposed.</remarks>
    public CancellationToken Closing { get; }

    /// <summary>Starts the read loop; incoming requests go to <paramref name="handler"/>.</summary>
    public void Start(FrameRequestHandler handler)
    {
        _handler = handler;
        _dispatcher = Task.Run(DispatchLoopAsync);
        _loop = Task.Run(ReadLoopAsync);
    }

    /// <summary>Reads exactly one frame before the loop starts (the first frame of a connection: hello).</summary>
    public Task<(byte Opcode, uint RequestId, byte[] Payload)> ReadFirstFrameAsync(CancellationToken cancellationToken) =>
        FramedStreamLifecycle.ReadFirstFrameAsync(_reader, _maxFrameSize, cancellationToken);

    /// <summary>Sends a request and waits for its response, deserialized with <paramref name="responseType"/>.</summary>
    /// <exception cref="ControlException">The peer answered with an error, or the connection closed, or it timed out.</exception>
    public async Task<TResponse> RequestAsync<TRequest, TResponse>(byte opcode, TRequest request, JsonTypeInfo<TRequest> requestType, JsonTypeInfo<TResponse> responseType, CancellationToken cancellationToken = default)
    {
        var (respOpcode, payload) = await RequestRawAsync(opcode, JsonSerializer.SerializeToUtf8Bytes(request, requestType), cancellationToken);
        if (respOpcode != (opcode | FrameCodec.ResponseBit))
        {
            throw new ControlException(ControlErrorCode.Internal, $"unexpected response opcode 0x{respOpcode:x2} to 0x{opcode:x2}");
        }

        try
        {
            return JsonSerializer.Deserialize(payload, responseType) ?? throw new JsonException("null payload");
        }
        catch (JsonException ex)
        {
            Fail(ConnectionCloseReason.ProtocolViolation, $"malformed response payload to 0x{opcode:x2}: {ex.Message}");
            throw new ControlException(ControlErrorCode.Internal, "malformed response from " + PeerName);
        }
    }

    /// <summary>Sends a request with a raw payload and returns the raw response (Error frames become exceptions).</summary>
    public async Task<(byte Opcode, byte[] Payload)> RequestRawAsync(byte opcode, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        var id = (uint)Interlocked.Increment(ref _nextId);
        if (id == 0)
        {
            id = (uint)Interlocked.Increment(ref _nextId);
        }

        var tcs = new TaskCompletionSource<(byte, byte[])>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[id] = tcs;
        try
        {
            if (_closed.Task.IsCompleted)
            {
                throw new ControlException(ControlErrorCode.Unavailable, $"connection to {PeerName} is closed");
            }

            await SendAsync(opcode, id, payload, cancellationToken);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _cts.Token);
            timeout.CancelAfter(RequestTimeout);
            try
            {
                try
                {
                    await tcs.Task.WaitAsync(timeout.Token);
                }
                catch (OperationCanceledException) when (tcs.Task.IsCompletedSuccessfully)
                {
                    // The answer arrived just before the connection closed: it still counts.
                }

                var (op, body) = tcs.Task.Result;
                if (op == (byte)ControlOpcode.Error)
                {
                    ErrorMessage? error = null;
                    try
                    {
                        error = JsonSerializer.Deserialize(body, ControlJsonContext.Default.ErrorMessage);
                    }
                    catch (JsonException)
                    {
                    }

                    throw new ControlException(error?.Code ?? ControlErrorCode.Internal, error?.Message ?? "error");
                }

                return (op, body);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw _cts.IsCancellationRequested
                    ? new ControlException(ControlErrorCode.Unavailable, $"connection to {PeerName} closed")
                    : new ControlException(ControlErrorCode.Unavailable, $"{PeerName} did not answer 0x{opcode:x2} within {RequestTimeout.TotalSeconds:0.#} s");
            }
        }
        finally
        {
            _pending.TryRemove(id, out _);
        }
    }

    /// <summary>Sends a notification (request id 0, no answer).</summary>
    public Task NotifyAsync<T>(byte opcode, T message, JsonTypeInfo<T> type, CancellationToken cancellationToken = default) =>
        SendAsync(opcode, 0, JsonSerializer.SerializeToUtf8Bytes(message, type), cancellationToken);

    /// <summary>Writes one frame (serialized with other writers).</summary>
    public async Task SendAsync(byte opcode, uint requestId, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        if (payload.Length > _maxFrameSize)
        {
            throw new ControlException(ControlErrorCode.Internal, $"frame of {payload.Length} bytes exceeds the limit");
        }

        var buffer = ArrayPool<byte>.Shared.Rent(FrameCodec.HeaderSize + payload.Length);
        try
        {
            FrameCodec.WriteHeader(buffer, opcode, requestId, payload.Length);
            payload.Span.CopyTo(buffer.AsSpan(FrameCodec.HeaderSize));
            await _writeLock.WaitAsync(cancellationToken);
            try
            {
                await _stream.WriteAsync(buffer.AsMemory(0, FrameCodec.HeaderSize + payload.Length), cancellationToken);
                await _stream.FlushAsync(cancellationToken);
            }
            finally
            {
                _writeLock.Release();
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or System.Net.Sockets.SocketException)
        {
            Fail(ConnectionCloseReason.TransportError, ex.Message);
            throw new ControlException(ControlErrorCode.Unavailable, $"connection to {PeerName} failed: {ex.Message}");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async Task ReadLoopAsync()
    {
        ConnectionCloseReason reason;
        string detail;
        try
        {
            while (true)
            {
                var result = await _reader.ReadAsync(_cts.Token);
                var buffer = result.Buffer;
                while (FrameCodec.TryReadFrame(ref buffer, _maxFrameSize, out var frame))
                {
                    if (Dispatch(frame) is { } request)
                    {
                        Interlocked.Add(ref _requestBytes, request.Payload.Length);
                        if (!_requests.Writer.TryWrite(request))
                        {
                            // Full: stop reading until a handler finishes (the buffer stays valid: nothing is read meanwhile).
                            await _requests.Writer.WriteAsync(request, _cts.Token);
                        }

                        // Too many bytes held for unhandled requests: stop reading the same way.
                        await WaitForRequestRoomAsync();
                    }
                }

                if (result.IsCompleted)
                {
                    (reason, detail) = FramedStreamLifecycle.EndOfStream(buffer.Length);
                    break;
                }

                _reader.AdvanceTo(buffer.Start, buffer.End);
            }
        }
        catch (Exception ex) when (FramedStreamLifecycle.TryClassify(ex, _cts.IsCancellationRequested, out reason, out detail))
        {
        }

        Fail(reason, detail);
    }

    /// <summary>Completes a response at once; returns a request (copied) for the dispatch queue.</summary>
    private (byte Opcode, uint RequestId, byte[] Payload)? Dispatch(Frame frame)
    {
        if (frame.IsResponse)
        {
            if (frame.RequestId != 0 && _pending.TryRemove(frame.RequestId, out var tcs))
            {
                tcs.TrySetResult((frame.Opcode, frame.Payload.ToArray()));
            }

            // A response nobody waits for (late, after a timeout) is dropped: never an error.
            return null;
        }

        return (frame.Opcode, frame.RequestId, frame.Payload.ToArray());
    }

    /// <summary>Starts a handler for each queued request, at most <see cref="MaxConcurrentRequests"/> at once.</summary>
    private async Task DispatchLoopAsync()
    {
        using var slots = new SemaphoreSlim(MaxConcurrentRequests, MaxConcurrentRequests);
        var running = new List<Task>();
        try
        {
            await foreach (var (opcode, requestId, payload) in _requests.Reader.ReadAllAsync(_cts.Token))
            {
                await slots.WaitAsync(_cts.Token);
                running.RemoveAll(t => t.IsCompleted);
                running.Add(RunAsync(opcode, requestId, payload));
            }
        }
        catch (OperationCanceledException)
        {
        }

        // The semaphore is disposed on return: let the handlers still running release it first.
        await Task.WhenAll(running).ContinueWith(_ => { }, TaskScheduler.Default);

        async Task RunAsync(byte opcode, uint requestId, byte[] payload)
        {
            try
            {
                // Inline up to the handler's first await, in arrival order (a synchronous handler such as the
                // manager's link report runs to completion before the next frame's).
                await HandleAsync(opcode, requestId, payload);
            }
            finally
            {
                slots.Release();
                ReleaseRequestBytes(payload.Length);
            }
        }
    }

    private async ValueTask WaitForRequestRoomAsync()
    {
        while (true)
        {
            Task room;
            lock (_requestRoomLock)
            {
                if (Interlocked.Read(ref _requestBytes) <= MaxQueuedRequestBytes)
                {
                    return;
                }

                room = _requestRoom.Task;
            }

            await room.WaitAsync(_cts.Token);
        }
    }

    private void ReleaseRequestBytes(int length)
    {
        if (length == 0)
        {
            return;
        }

        Interlocked.Add(ref _requestBytes, -length);
        TaskCompletionSource room;
        lock (_requestRoomLock)
        {
            room = _requestRoom;
            _requestRoom = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        room.TrySetResult();
    }

    private async Task HandleAsync(byte opcode, uint requestId, byte[] payload)
    {
        byte[] response;
        byte responseOpcode = (byte)(opcode | FrameCodec.ResponseBit);
        try
        {
            response = _handler is null ? throw new ControlException(ControlErrorCode.BadRequest, "no handler") : await _handler(opcode, payload, _cts.Token);
        }
        catch (ControlException ex)
        {
            responseOpcode = (byte)ControlOpcode.Error;
            response = JsonSerializer.SerializeToUtf8Bytes(new ErrorMessage { Code = ex.Code, Message = ex.Message }, ControlJsonContext.Default.ErrorMessage);
        }
        catch (JsonException ex)
        {
            Fail(ConnectionCloseReason.ProtocolViolation, $"malformed payload of opcode 0x{opcode:x2}: {ex.Message}");
            return;
        }
        catch (OperationCanceledException) when (_cts.IsCancellationRequested)
        {
            return;
        }
        catch (Exception ex)
        {
            Log.HandlerFailed(_logger, PeerName, opcode, ex);
            responseOpcode = (byte)ControlOpcode.Error;
            response = JsonSerializer.SerializeToUtf8Bytes(new ErrorMessage { Code = ControlErrorCode.Internal, Message = "internal error" }, ControlJsonContext.Default.ErrorMessage);
        }

        if (requestId == 0)
        {
            return;
        }

        if (response.Length > _maxFrameSize)
        {
            // A handler's answer that no frame can carry is our bug, not the peer's: say so on both sides rather than
            // leave the caller waiting for its timeout.
            Log.ResponseTooLarge(_logger, PeerName, opcode, response.Length, _maxFrameSize);
            responseOpcode = (byte)ControlOpcode.Error;
            response = JsonSerializer.SerializeToUtf8Bytes(new ErrorMessage { Code = ControlErrorCode.Internal, Message = $"the answer to 0x{opcode:x2} exceeds the frame limit" },
                ControlJsonContext.Default.ErrorMessage);
        }

        try
        {
            await SendAsync(responseOpcode, requestId, response, _cts.Token);
        }
        catch (Exception ex) when (ex is ControlException or OperationCanceledException)
        {
        }
    }

    /// <summary>Closes the connection with a reason (logged once).</summary>
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

        FramedStreamLifecycle.Teardown(_cts, _stream);
        foreach (var pending in _pending.Values)
        {
            pending.TrySetCanceled();
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Fail(ConnectionCloseReason.LocalClosed, "disposed");
        await FramedStreamLifecycle.JoinAsync(ex => Log.LoopFailed(_logger, PeerName, ex), _loop, _dispatcher);

        await _reader.CompleteAsync();
        _cts.Dispose();
        _writeLock.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2001, Level = LogLevel.Warning, Message = "Control connection {Peer} closed: protocol violation: {Detail}")]
        public static partial void ProtocolViolation(ILogger logger, string peer, string detail);

        [LoggerMessage(EventId = 2002, Level = LogLevel.Information, Message = "Control connection {Peer} closed ({Reason}): {Detail}")]
        public static partial void Closed(ILogger logger, string peer, ConnectionCloseReason reason, string detail);

        [LoggerMessage(EventId = 2003, Level = LogLevel.Error, Message = "Control request 0x{Opcode:x2} from {Peer} failed")]
        public static partial void HandlerFailed(ILogger logger, string peer, byte opcode, Exception exception);

        [LoggerMessage(EventId = 2004, Level = LogLevel.Error, Message = "Control answer to 0x{Opcode:x2} for {Peer} is {Size} bytes, over the {Limit}-byte frame limit: answered with an error instead")]
        public static partial void ResponseTooLarge(ILogger logger, string peer, byte opcode, int size, int limit);

        [LoggerMessage(EventId = 2005, Level = LogLevel.Error, Message = "Control connection {Peer}: a loop failed")]
        public static partial void LoopFailed(ILogger logger, string peer, Exception exception);
    }
}
