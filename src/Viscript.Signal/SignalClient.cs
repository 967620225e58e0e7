using System.Net.Sockets;
using System.Text.Json;
using Viscript.Signal.Internal;
using Viscript.Signal.Protocol;

namespace Viscript.Signal;

/// <summary>
/// The app side of the signal protocol. One line opts a program in:
/// <code>await using var signal = SignalClient.StartFromEnvironment();</code>
/// It registers with the server, answers TOP / PING / SHUTDOWN, keeps the connection alive with PING frames and
/// reconnects with backoff. Works with the original Go server (docs/signal.md).
/// </summary>
public sealed class SignalClient : IAsyncDisposable
{
    private const string IdField = "Id";

    private readonly CancellationTokenSource _stopping = new();
    private readonly CancellationTokenSource _shutdown = new();
    private readonly Lock _sync = new();
    private TaskCompletionSource _registered = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private SignalConnection? _connection;
    private Task? _loop;
    private ulong _id;
    private int _shutdownObserved;
    private int _disposed;

    /// <summary>Creates a client; call <see cref="Start()"/> to connect. Null options make an inert, disabled client.</summary>
    public SignalClient(SignalClientOptions? options)
    {
        Options = options;
        _id = options?.ClientId ?? 0;
        if (options is not null)
        {
            _ = options.ParseServerAddress(); // fail fast on a bad address
        }
    }

    /// <summary>The options, or null when the client is disabled.</summary>
    public SignalClientOptions? Options { get; }

    /// <summary>Whether the client talks to a server at all (false when <c>SIGNAL_CLIENT</c> was unset or false).</summary>
    public bool IsEnabled => Options is not null;

    /// <summary>Current id: the configured one, then whatever the server's last REG reply named.</summary>
    public ulong Id => Interlocked.Read(ref _id);

    /// <summary>Whether the current connection's registration was acknowledged.</summary>
    public bool IsRegistered { get; private set; }

    /// <summary>Extension level the server answered (0 for the original Go server).</summary>
    public int ServerExtension { get; private set; }

    /// <summary>Cancelled when the server asks this process to shut down. Reading it counts as handling shutdown.</summary>
    public CancellationToken ShutdownToken
    {
        get
        {
            Interlocked.Exchange(ref _shutdownObserved, 1);
            return _shutdown.Token;
        }
    }

    /// <summary>Raised (after the reply has been sent) when the server asks this process to shut down.</summary>
    public event EventHandler? ShutdownRequested;

    /// <summary>Raised each time a registration is acknowledged, with the adopted id.</summary>
    public event EventHandler<ulong>? Registered;

    /// <summary>Raised when a connection ends, with the reason.</summary>
    public event EventHandler<string>? Disconnected;

    /// <summary>Log lines (also passed to <see cref="SignalClientOptions.Log"/>).</summary>
    public event EventHandler<string>? Log;

    /// <summary>
    /// Starts a client configured from <c>SIGNAL_*</c> env vars; disabled (inert) when <c>SIGNAL_CLIENT</c> is unset or
    /// false, or when <c>SIGNAL_SERVER_ADDRESS</c> is not <c>host:port</c> (reported through the log, or stderr). Never throws.
    /// </summary>
    /// <param name="configure">Adjusts the options read from the environment (e.g. to add a log callback).</param>
    public static SignalClient StartFromEnvironment(Func<SignalClientOptions, SignalClientOptions>? configure = null)
    {
        var options = SignalClientOptions.FromEnvironment();
        if (options is not null && configure is not null)
        {
            options = configure(options);
        }

        try
        {
            return Start(options);
        }
        catch (FormatException ex)
        {
            // A bad SIGNAL_SERVER_ADDRESS must not stop the program that opted in: report it and stay inert.
            var log = options?.Log ?? Console.Error.WriteLine;
            log($"signal client disabled: {ex.Message}");
            return new SignalClient(null);
        }
    }

    /// <summary>Creates and starts a client.</summary>
    public static SignalClient Start(SignalClientOptions? options)
    {
        var client = new SignalClient(options);
        client.Start();
        return client;
    }

    /// <summary>Starts connecting in the background; events subscribed before this call see every registration.</summary>
    public void Start()
    {
        if (Options is null)
        {
            return;
        }

        lock (_sync)
        {
            ObjectDisposedException.ThrowIf(_disposed != 0, this);
            if (_loop is not null)
            {
                throw new InvalidOperationException("the signal client is already started");
            }

            _loop = Task.Run(() => RunAsync(Options, _stopping.Token));
        }
    }

    /// <summary>Completes when the current (or next) connection is registered.</summary>
    public Task WaitForRegistrationAsync(CancellationToken cancellationToken = default)
    {
        if (Options is null)
        {
            throw new InvalidOperationException("the signal client is disabled");
        }

        lock (_sync)
        {
            return _registered.Task.WaitAsync(cancellationToken);
        }
    }

    /// <summary>Stops the client and closes its connection.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync();
        _connection?.Abort("client stopped");
        if (_loop is not null)
        {
            await _loop;
        }

        _stopping.Dispose();
    }

    private async Task RunAsync(SignalClientOptions options, CancellationToken cancellationToken)
    {
        var (host, port) = options.ParseServerAddress();
        var delay = options.InitialReconnectDelay;
        while (!cancellationToken.IsCancellationRequested)
        {
            var socket = await ConnectAsync(options, host, port, cancellationToken);
            if (socket is not null && await RunSessionAsync(socket, options, cancellationToken))
            {
                delay = options.InitialReconnectDelay;
            }

            if (cancellationToken.IsCancellationRequested)
            {
                break;
            }

            try
            {
                // Jitter spreads the reconnects of many clients after a server restart.
                var jittered = delay * (0.8 + (Random.Shared.NextDouble() * 0.4));
                await Task.Delay(jittered, options.TimeProvider, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, options.MaxReconnectDelay.Ticks));
            SignalMetrics.Reconnects.Add(1);
        }
    }

    private async Task<Socket?> ConnectAsync(SignalClientOptions options, string host, int port, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        try
        {
            using var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            connectTimeout.CancelAfter(options.ConnectTimeout);
            await socket.ConnectAsync(host, port, connectTimeout.Token);
            return socket;
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
            socket.Dispose();
            if (!cancellationToken.IsCancellationRequested)
            {
                Write($"connect to viscript at {options.ServerAddress} as id {Id} failed: {(ex is OperationCanceledException ? "timed out" : ex.Message)}");
            }

            return null;
        }
    }

    /// <summary>Registers and serves one connection until it ends; returns whether the registration was acknowledged.</summary>
    private async Task<bool> RunSessionAsync(Socket socket, SignalClientOptions options, CancellationToken cancellationToken)
    {
        var registered = false;
        var connection = new SignalConnection(socket, "client");
        _connection = connection;
        using var session = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var pinger = PingLoopAsync(connection, options, session.Token);
        string reason;
        try
        {
            await connection.SendNormalAsync(SignalOps.Reg, BuildReg(options), cancellationToken);
            reason = await connection.RunReadLoopAsync(
                frame => OnFrameAsync(connection, frame, () => registered = true),
                () => options.MaxFrameSize, options.ReadTimeout, options.TimeProvider, cancellationToken);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException)
        {
            reason = cancellationToken.IsCancellationRequested ? "stopped" : "send failed: " + ex.Message;
        }
        catch (Exception ex)
        {
            reason = "internal error: " + ex.Message;
        }

        connection.Abort(reason);
        await session.CancelAsync();
        await pinger;
        await connection.DisposeAsync();
        lock (_sync)
        {
            IsRegistered = false;
            if (_registered.Task.IsCompleted)
            {
                _registered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }

        if (!cancellationToken.IsCancellationRequested)
        {
            Write($"disconnected from viscript at {options.ServerAddress}: {reason}");
            Raise(Disconnected, reason);
        }

        return registered;
    }

    private byte[] BuildReg(SignalClientOptions options) => SignalJson.Write(w =>
    {
        w.WriteStartObject();
        w.WriteNumber(IdField, Id);
        if (options.UseExtensions)
        {
            w.WriteNumber("Ext", SignalOps.ExtensionVersion);
            w.WriteNumber("Pid", Environment.ProcessId);
        }

        if (options.Token is { } token)
        {
            w.WriteString("Token", token);
        }

        w.WriteEndObject();
    });

    private async Task PingLoopAsync(SignalConnection connection, SignalClientOptions options, CancellationToken cancellationToken)
    {
        try
        {
            using var timer = new PeriodicTimer(options.PingInterval, options.TimeProvider);
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                await connection.SendPingAsync((ulong)options.TimeProvider.GetUtcNow().ToUnixTimeMilliseconds(), cancellationToken);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // Connection or client ending; the read loop reports why.
        }
    }

    private async ValueTask OnFrameAsync(SignalConnection connection, SignalFrame frame, Action onRegistered)
    {
        switch (frame.Type)
        {
            case SignalFrameType.Normal:
                // The Go client acks every NORMAL frame before acting on it; we do the same for compatibility.
                await connection.SendAckAsync(frame.Seq);
                if (!frame.HasOp)
                {
                    return;
                }

                await OnMessageAsync(connection, frame.Op, frame.Json, onRegistered);
                break;

            case SignalFrameType.Ping:
                // Reference §4.2: the server side never pings; the Go client closes on it, and so do we.
                throw new SignalProtocolException("PING sent to a client (only clients ping)");

            default:
                break; // ACK and PONG: accepted, nothing to do
        }
    }

    private async ValueTask OnMessageAsync(SignalConnection connection, byte op, System.Buffers.ReadOnlySequence<byte> json, Action onRegistered)
    {
        if (!SignalJson.TryParse(json, out var body))
        {
            // As the original: a request with invalid JSON gets only the ACK.
            Write($"ignored op 0x{op:x2} with invalid JSON");
            return;
        }

        var rid = body.ValueKind == JsonValueKind.Object ? SignalJson.GetRid(body) : null;
        switch (op)
        {
            case SignalOps.Reg | SignalOps.ReplyFlag:
                if (SignalJson.TryGetUInt64(body, "Id", out var id) && id is { } adopted)
                {
                    Interlocked.Exchange(ref _id, adopted);
                }

                SignalJson.TryGetInt64(body, "Ext", out var ext);
                ServerExtension = (int)Math.Clamp(ext ?? 0, 0, SignalOps.ExtensionVersion);
                onRegistered();
                lock (_sync)
                {
                    IsRegistered = true;
                    _registered.TrySetResult();
                }

                Raise(Registered, Id);
                break;

            case SignalOps.Top:
                await connection.SendNormalAsync(SignalOps.Top | SignalOps.ReplyFlag, ResourceUsageCollector.Collect(rid));
                break;

            case SignalOps.Ping:
                await connection.SendNormalAsync(SignalOps.Ping | SignalOps.ReplyFlag, ResourceUsageCollector.Empty(rid));
                break;

            case SignalOps.Shutdown:
                await connection.SendNormalAsync(SignalOps.Shutdown | SignalOps.ReplyFlag, ResourceUsageCollector.Shutdown(rid));
                OnShutdownRequested();
                break;

            default:
                Write($"ignored unknown op 0x{op:x2}");
                break;
        }
    }

    private void OnShutdownRequested()
    {
        Write("shutdown requested by viscript");
        var handled = ShutdownRequested is not null || Volatile.Read(ref _shutdownObserved) != 0;
        try
        {
            _shutdown.Cancel();
        }
        catch (AggregateException ex)
        {
            Write("a shutdown token callback threw: " + ex.InnerException?.Message);
        }

        try
        {
            ShutdownRequested?.Invoke(this, EventArgs.Empty);
        }
        catch (Exception ex)
        {
            Write("a ShutdownRequested handler threw: " + ex.Message);
        }

        if (!handled && Options is { ExitOnUnhandledShutdown: true } options)
        {
            // Nobody registered a graceful-stop hook: exit like the original, after a shorter grace period.
            _ = Task.Run(async () =>
            {
                await Task.Delay(options.ShutdownGracePeriod, options.TimeProvider);
                Environment.Exit(0);
            });
        }
    }

    private void Write(string message)
    {
        try
        {
            Options?.Log?.Invoke(message);
            Log?.Invoke(this, message);
        }
        catch
        {
            // Logging must not break the protocol.
        }
    }

    private void Raise<T>(EventHandler<T>? handler, T value)
    {
        try
        {
            handler?.Invoke(this, value);
        }
        catch (Exception ex)
        {
            Write("an event handler threw: " + ex.Message);
        }
    }
}
