using System.Net;
using System.Net.Sockets;
using System.Text.Json.Serialization.Metadata;
using Skywire.Core.AppApi;
using Skywire.Core.Streams;
using Skywire.Protocol.AppApi;
using Skywire.Protocol.Control;
using Skywire.Protocol.Framing;
using ProtocolViolationException = Skywire.Protocol.Framing.ProtocolViolationException;

namespace Skywire.Core.Sdk;

/// <summary>
/// .NET SDK of the app API: connect to the node beside you, register a name, list apps, dial and accept streams.
/// Streams are <see cref="DuplexStream"/>s (<see cref="SkywireStream"/>); each one is its own loopback TCP
/// connection to the node (docs/protocol.md §7). A stream that reads to its end (0) is complete; one that broke
/// (session died, route vanished, peer aborted) throws a <see cref="StreamAbortedException"/> instead.
/// </summary>
/// <example>
/// <code>
/// await using var app = await SkywireApp.ConnectAsync(nodeApps, SkywireApp.ReadTokenFile(path));
/// await app.RegisterAsync("echo", "echo");
/// await using var s = await app.AcceptAsync();
/// </code>
/// </example>
public sealed partial class SkywireApp : IAsyncDisposable
{
    private readonly IPEndPoint _node;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly SkywireAppOptions? _options;
    private string _token;
    private SocketStream _control;
    private string? _type;
    private uint _nextId;
    private int _reconnects;

    private SkywireApp(IPEndPoint node, string token, SocketStream control, string nodeKey, SkywireAppOptions? options = null)
    {
        _node = node;
        _token = token;
        _control = control;
        NodeKey = nodeKey;
        _options = options;
    }

    /// <summary>The key of the node this app talks to.</summary>
    public string NodeKey { get; private set; }

    /// <summary>How often the app connected to its node again (it restarted) since the start.</summary>
    public int Reconnects => Volatile.Read(ref _reconnects);

    /// <summary>The name registered through this connection, if any.</summary>
    public string? Name { get; private set; }

    /// <summary>Reads the node's app token file (trimmed).</summary>
    public static string ReadTokenFile(string path)
    {
        try
        {
            return File.ReadAllText(path).Trim();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new AppApiException(AppApiErrorCode.Unauthorized, $"cannot read the app token file '{path}': {ex.Message}");
        }
    }

    /// <summary>Connects and authenticates to a node's app API.</summary>
    /// <exception cref="AppApiException">Wrong token, version mismatch, or the node is unreachable.</exception>
    public static async Task<SkywireApp> ConnectAsync(IPEndPoint nodeApps, string token, CancellationToken cancellationToken = default)
    {
        var (stream, ack) = await OpenAsync(nodeApps, token, cancellationToken);
        return new SkywireApp(nodeApps, token, stream, ack.Node);
    }

    /// <summary>
    /// Connects to the node, waiting for it as long as it takes (<paramref name="cancellationToken"/> ends the wait): a
    /// node that is not up yet, or a token file not written yet or left by the node's previous run, is retried with
    /// capped backoff and jitter. Afterwards, a dial or accept that finds the node gone waits for it again the same
    /// way, with the new token, and registers this app's name again.
    /// </summary>
    /// <exception cref="AppApiException">A refusal other than "unreachable" (or a wrong token given as <see cref="SkywireAppOptions.Token"/>).</exception>
    public static async Task<SkywireApp> ConnectAsync(SkywireAppOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var (stream, ack, token) = await OpenWithRetryAsync(options, cancellationToken);
        return new SkywireApp(options.NodeApps, token, stream, ack.Node, options);
    }

    private static async Task<(SocketStream Stream, AppHelloAckMessage Ack, string Token)> OpenWithRetryAsync(SkywireAppOptions options, CancellationToken cancellationToken)
    {
        var backoff = new Channels.Backoff(options.RetryDelay, options.MaxRetryDelay);
        while (true)
        {
            try
            {
                var token = options.ReadToken();
                var (stream, ack) = await OpenAsync(options.NodeApps, token, cancellationToken);
                return (stream, ack, token);
            }
            catch (AppApiException ex) when (NodeMayComeBack(ex, options))
            {
                options.OnRetry?.Invoke(ex);
                await backoff.DelayAsync(options.TimeProvider, cancellationToken);
            }
        }
    }

    /// <summary>The node is not there (yet, or any more), or its token file is not the running node's yet.</summary>
    private static bool NodeMayComeBack(AppApiException ex, SkywireAppOptions options) =>
        ex.Code == AppApiErrorCode.Unreachable || (ex.Code == AppApiErrorCode.Unauthorized && options.Token is null);

    /// <summary>Waits for the node again (it went away) and registers this app's name with it again.</summary>
    private async Task ReconnectAsync(SocketStream failed, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            if (!ReferenceEquals(_control, failed))
            {
                return; // another call reconnected already
            }

            // The old registration goes with the old connection (a node that is still up drops the name when it closes).
            await failed.DisposeAsync();
            var (stream, ack, token) = await OpenWithRetryAsync(_options!, cancellationToken);
            _control = stream;
            _token = token;
            NodeKey = ack.Node;
            if (Name is { } name)
            {
                var backoff = new Channels.Backoff(_options!.RetryDelay, _options.MaxRetryDelay);
                while (true)
                {
                    try
                    {
                        await CallAsync(stream, AppApiOpcode.Register, ++_nextId + 1, new AppApiRegisterMessage { Name = name, Type = _type ?? "" },
                            AppApiJsonContext.Default.AppApiRegisterMessage, AppApiJsonContext.Default.OkMessage, cancellationToken);
                        break;
                    }
                    catch (AppApiException ex) when (ex.Code == AppApiErrorCode.Conflict && backoff.Attempts < 8)
                    {
                        // The node has not noticed the old connection's end yet.
                        await backoff.DelayAsync(_options.TimeProvider, cancellationToken);
                    }
                }
            }

            Interlocked.Increment(ref _reconnects);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Opens a stream connection to the node; with options, a node that went away is waited for (once per call).</summary>
    private async Task<SocketStream> OpenStreamConnectionAsync(CancellationToken cancellationToken)
    {
        var control = _control;
        try
        {
            return (await OpenAsync(_node, _token, cancellationToken)).Stream;
        }
        catch (AppApiException ex) when (_options is { } options && NodeMayComeBack(ex, options))
        {
            await ReconnectAsync(control, cancellationToken);
            return (await OpenAsync(_node, _token, cancellationToken)).Stream;
        }
    }

    private static async Task<(SocketStream Stream, AppHelloAckMessage Ack)> OpenAsync(IPEndPoint node, string token, CancellationToken cancellationToken)
    {
        var socket = new Socket(node.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(node, cancellationToken);
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            throw new AppApiException(AppApiErrorCode.Unreachable, $"cannot reach the node's app API at {node}: {ex.Message}");
        }

        var stream = new SocketStream(socket);
        try
        {
            var ack = await CallAsync(stream, AppApiOpcode.Hello, 1, new AppHelloMessage { Version = AppApiProtocol.Version, Token = token },
                AppApiJsonContext.Default.AppHelloMessage, AppApiJsonContext.Default.AppHelloAckMessage, cancellationToken);
            return (stream, ack);
        }
        catch
        {
            await stream.DisposeAsync();
            throw;
        }
    }

    private static async Task<TResponse> CallAsync<TRequest, TResponse>(Stream stream, AppApiOpcode opcode, uint id, TRequest request,
        JsonTypeInfo<TRequest> requestType, JsonTypeInfo<TResponse> responseType, CancellationToken cancellationToken)
    {
        try
        {
            await FrameIo.WriteFrameAsync(stream, (byte)opcode, id, request, requestType, cancellationToken);
            var frame = await FrameIo.ReadFrameAsync(stream, AppApiProtocol.MaxFrameSize, cancellationToken)
                ?? throw new AppApiException(AppApiErrorCode.Unreachable, "the node closed the app API connection");
            var (op, rid, payload) = frame;
            if (rid != id)
            {
                throw new ProtocolViolationException($"response id {rid} does not match request {id}");
            }

            if (op == (byte)AppApiOpcode.Error)
            {
                var error = FrameIo.Parse(payload, AppApiJsonContext.Default.AppErrorMessage);
                throw new AppApiException(error.Code, error.Message);
            }

            if (op != ((byte)opcode | FrameCodec.ResponseBit))
            {
                throw new ProtocolViolationException($"unexpected response opcode 0x{op:x2}");
            }

            return FrameIo.Parse(payload, responseType);
        }
        catch (IOException ex)
        {
            throw new AppApiException(AppApiErrorCode.Unreachable, "app API connection failed: " + ex.Message);
        }
    }

    private async Task<TResponse> RequestAsync<TRequest, TResponse>(AppApiOpcode opcode, TRequest request, JsonTypeInfo<TRequest> requestType, JsonTypeInfo<TResponse> responseType, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            return await CallAsync(_control, opcode, ++_nextId + 1, request, requestType, responseType, cancellationToken);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Registers this app's name and type; it stays registered while this object lives.</summary>
    public async Task RegisterAsync(string name, string type, CancellationToken cancellationToken = default)
    {
        await RequestAsync(AppApiOpcode.Register, new AppApiRegisterMessage { Name = name, Type = type },
            AppApiJsonContext.Default.AppApiRegisterMessage, AppApiJsonContext.Default.OkMessage, cancellationToken);
        Name = name;
        _type = type;
    }

    /// <summary>Lists apps from the manager's tracker: all (<paramref name="by"/> "all"), by "name" or by "type".</summary>
    /// <remarks>Asks page by page (docs/protocol.md §4.6): a page fits the app API's frame however many apps the tracker holds.</remarks>
    public async Task<IReadOnlyList<AppInfo>> ListAppsAsync(string by = "all", string? value = null, CancellationToken cancellationToken = default) =>
        await Control.ManagerQueries.AllPagesAsync(async after =>
        {
            var page = await RequestAsync(AppApiOpcode.ListApps, new AppListMessage { By = by, Value = value, After = after, Limit = Control.ManagerQueries.PageSize },
                AppApiJsonContext.Default.AppListMessage, AppApiJsonContext.Default.AppListResultMessage, cancellationToken);
            return (page.Apps, page.Next);
        });

    /// <summary>Opens a stream to app <paramref name="app"/> on node <paramref name="nodeKey"/>.</summary>
    public async Task<SkywireStream> DialAsync(string nodeKey, string app, CancellationToken cancellationToken = default)
    {
        var stream = await OpenStreamConnectionAsync(cancellationToken);
        try
        {
            var ready = await CallAsync(stream, AppApiOpcode.Dial, 2, new DialMessage { Node = nodeKey, App = app, From = Name },
                AppApiJsonContext.Default.DialMessage, AppApiJsonContext.Default.StreamReadyMessage, cancellationToken);
            return new SkywireStream(stream, ready);
        }
        catch
        {
            await stream.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Attaches to the datagram flow of <paramref name="stream"/> (docs/protocol.md §6.3, §7.1): unreliable datagrams
    /// between this app and the stream's peer app, sealed end to end, each in its own mesh packet. Both apps attach; a
    /// datagram that arrives before the receiving app attached is dropped (counted by its node).
    /// </summary>
    /// <exception cref="AppApiException">The stream cannot carry datagrams (relayed by a messenger) or has ended.</exception>
    public async Task<SkywireDatagrams> OpenDatagramsAsync(SkywireStream stream, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var handle = stream.DatagramHandle ?? throw new AppApiException(AppApiErrorCode.BadRequest,
            "this stream cannot carry datagrams (it is relayed by a messenger, or the node is too old)");
        var (connection, _) = await OpenAsync(_node, _token, cancellationToken);
        try
        {
            var ready = await CallAsync(connection, AppApiOpcode.Datagrams, 2, new DatagramsMessage { Stream = handle },
                AppApiJsonContext.Default.DatagramsMessage, AppApiJsonContext.Default.DatagramsReadyMessage, cancellationToken);
            return new SkywireDatagrams(connection, ready.MaxDatagram);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>The node's key, link address and the underlay addresses it talks to (link peers, manager, messenger).</summary>
    public Task<NodeInfoMessage> GetNodeInfoAsync(CancellationToken cancellationToken = default) =>
        RequestAsync(AppApiOpcode.NodeInfo, new OkMessage(), AppApiJsonContext.Default.OkMessage, AppApiJsonContext.Default.NodeInfoMessage, cancellationToken);

    /// <summary>
    /// Waits for the next stream dialed to this app (call <see cref="RegisterAsync"/> first). Connected with
    /// <see cref="SkywireAppOptions"/>, a node that goes away while this waits is waited for, and the wait goes on.
    /// </summary>
    public async Task<SkywireStream> AcceptAsync(CancellationToken cancellationToken = default)
    {
        var name = Name ?? throw new InvalidOperationException("register a name before accepting streams");
        while (true)
        {
            var control = _control;
            var stream = await OpenStreamConnectionAsync(cancellationToken);
            try
            {
                var ready = await CallAsync(stream, AppApiOpcode.Accept, 2, new AcceptMessage { Name = name },
                    AppApiJsonContext.Default.AcceptMessage, AppApiJsonContext.Default.StreamReadyMessage, cancellationToken);
                return new SkywireStream(stream, ready);
            }
            catch (AppApiException ex) when (_options is { } options && NodeMayComeBack(ex, options))
            {
                // The node went away while we waited: wait for it, then accept again.
                await stream.DisposeAsync();
                await ReconnectAsync(control, cancellationToken);
            }
            catch
            {
                await stream.DisposeAsync();
                throw;
            }
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _control.DisposeAsync();
        _lock.Dispose();
    }
}

/// <summary>
/// One mesh stream as an app sees it: a byte stream with half-close (<see cref="CompleteWrites"/>) and abort
/// (<see cref="Abort"/>, a reset the peer app sees as an error). Reads return 0 only at the end of a complete stream:
/// the peer finished its writes and every byte arrived. A stream that broke (its session died, its route vanished, the
/// peer aborted) makes reads and writes throw a <see cref="StreamAbortedException"/> (the node resets the connection).
/// </summary>
/// <remarks>
/// When this app finished its writes first, the node passes on the peer's end of stream only once the peer's node
/// acknowledged every byte this app wrote: reading to the end after <see cref="CompleteWrites"/> means both directions
/// arrived (docs/protocol.md §7).
/// Disposing finishes the stream cleanly (the peer reads end of stream after the last byte) unless a write did not
/// finish (it was cancelled or failed) or is still pending: then it resets. An app that gives up part way for any
/// other reason calls <see cref="Abort"/> before disposing.
/// </remarks>
public sealed class SkywireStream : DuplexStream
{
    private readonly SocketStream _inner;

    internal SkywireStream(SocketStream inner, StreamReadyMessage ready)
    {
        _inner = inner;
        RemoteNode = ready.RemoteNode;
        RemoteApp = ready.RemoteApp;
        DatagramHandle = ready.Datagrams;
    }

    /// <summary>The handle of the stream's datagram flow, when it can carry datagrams (<see cref="SkywireApp.OpenDatagramsAsync"/>).</summary>
    public string? DatagramHandle { get; }

    /// <summary>The node at the other end.</summary>
    public string RemoteNode { get; }

    /// <summary>The app at the other end, when known.</summary>
    public string? RemoteApp { get; }

    /// <summary>Closes the sending direction; the peer reads end of stream, and this side can still read.</summary>
    public void CompleteWrites() => _inner.CompleteWritesAsync().AsTask().GetAwaiter().GetResult();

    /// <inheritdoc/>
    public override ValueTask CompleteWritesAsync(CancellationToken cancellationToken = default) => _inner.CompleteWritesAsync(cancellationToken);

    /// <summary>Resets the stream: the peer app's reads and writes fail; it never sees a clean end.</summary>
    public override void Abort() => _inner.Abort();

    /// <inheritdoc/>
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            return await _inner.ReadAsync(buffer, cancellationToken);
        }
        catch (StreamAbortedException ex)
        {
            throw Broken(ex);
        }
    }

    /// <inheritdoc/>
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            await _inner.WriteAsync(buffer, cancellationToken);
        }
        catch (StreamAbortedException ex)
        {
            throw Broken(ex);
        }
    }

    private StreamAbortedException Broken(Exception inner) =>
        new($"the stream with {RemoteApp ?? "?"} on {RemoteNode[..Math.Min(12, RemoteNode.Length)]} broke: its session died, its route vanished or the peer aborted; it is incomplete", inner);

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _inner.Dispose();
        }

        base.Dispose(disposing);
    }
}
