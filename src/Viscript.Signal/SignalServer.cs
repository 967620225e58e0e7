using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Viscript.Signal.Internal;
using Viscript.Signal.Protocol;

namespace Viscript.Signal;

/// <summary>
/// The viscript side of the signal protocol: accepts client connections, keeps the registry of ids and sends
/// TOP / PING / SHUTDOWN requests. Wire-compatible with the original Go clients (docs/signal.md).
/// </summary>
public sealed partial class SignalServer : IAsyncDisposable
{
    private readonly ConcurrentDictionary<ulong, ServerConnection> _clients = new();
    private readonly ConcurrentDictionary<ServerConnection, Task> _connections = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly byte[]? _token;
    private readonly ReportThrottle _refusals;
    private ConnectionLimiter? _limiter;
    private Socket? _listener;
    private Task? _acceptLoop;
    private IPEndPoint? _localEndPoint;
    private int _state; // 0 new, 1 started, 2 disposed

    /// <summary>Creates a server; nothing listens until <see cref="StartAsync"/>.</summary>
    public SignalServer(SignalServerOptions? options = null)
    {
        Options = options ?? SignalServerOptions.Default;
        ArgumentOutOfRangeException.ThrowIfLessThan(Options.MaxFrameSize, 16, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(Options.MaxConnections, 1, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(Options.MaxConnectionsPerAddress, 1, nameof(options));
        _token = string.IsNullOrEmpty(Options.Token) ? null : Encoding.UTF8.GetBytes(Options.Token);
        _refusals = new ReportThrottle(Options.TimeProvider, TimeSpan.FromSeconds(1));
    }

    /// <summary>
    /// The connection cap in effect once started: <see cref="SignalServerOptions.MaxConnections"/>, lowered when the
    /// descriptor limit (ulimit -n) leaves less room (half of the descriptors free at start, less a reserve of 32).
    /// </summary>
    public int MaxConnections => _limiter?.MaxConnections ?? Options.MaxConnections;

    /// <summary>Connections held now (registered or not).</summary>
    public int ConnectionCount => _limiter?.Count ?? 0;

    /// <summary>Test seam: treat every peer as another host (loopback is the only address tests may use).</summary>
    internal bool TreatClientsAsRemote { get; set; }

    /// <summary>The options in effect.</summary>
    public SignalServerOptions Options { get; }

    /// <summary>The bound address once started.</summary>
    public IPEndPoint LocalEndPoint => _localEndPoint ?? throw new InvalidOperationException("the signal server is not started");

    /// <summary>Raised when a client registers (or re-registers after a reconnect).</summary>
    public event EventHandler<SignalClientInfo>? ClientRegistered;

    /// <summary>
    /// Raised when a registered client's connection ends and its id is released. Not raised for a connection whose id
    /// was already taken over by a newer registration.
    /// </summary>
    public event EventHandler<SignalClientInfo>? ClientDisconnected;

    /// <summary>Raised for every diagnostic the server wants an operator to see (bad frames, refused registrations).</summary>
    public event EventHandler<string>? Diagnostic;

    /// <summary>The same diagnostics as <see cref="Diagnostic"/>, with a category, peer and id for structured logging.</summary>
    public event EventHandler<SignalDiagnostic>? DiagnosticReported;

    /// <summary>Binds the listener and starts accepting clients.</summary>
    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (Interlocked.CompareExchange(ref _state, 1, 0) != 0)
        {
            throw new InvalidOperationException("the signal server was already started or disposed");
        }

        var listen = Options.Listen;
        var socket = new Socket(listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (listen.AddressFamily == AddressFamily.InterNetworkV6 && listen.Address.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = true;
            }

            socket.Bind(listen);
            socket.Listen(1024);
        }
        catch
        {
            socket.Dispose();
            Volatile.Write(ref _state, 0);
            throw;
        }

        _listener = socket;
        _localEndPoint = (IPEndPoint)socket.LocalEndPoint!;
        var cap = Options.MaxConnections;
        if (DescriptorBudget.ConnectionsAllowed() is { } budget && budget < cap)
        {
            cap = budget;
            Report(SignalDiagnosticKind.Listener,
                $"connection cap lowered from {Options.MaxConnections} to {cap} by the descriptor limit ({DescriptorBudget.TryReadSoftLimit()} open files)");
        }

        _limiter = new ConnectionLimiter(cap, Options.MaxConnectionsPerAddress);
        if (!IsLoopbackAddress(listen.Address) && _token is null)
        {
            Report(SignalDiagnosticKind.Listener, $"listening on {_localEndPoint} without a token: clients from other hosts will be refused");
        }

        _acceptLoop = AcceptLoopAsync(socket, _limiter, _stopping.Token);
        return Task.CompletedTask;
    }

    /// <summary>Snapshot of the registered clients.</summary>
    public IReadOnlyList<SignalClientInfo> Clients =>
        [.. _clients.Values.Select(c => c.Info).OfType<SignalClientInfo>().OrderBy(c => c.Id)];

    /// <summary>Looks up a registered client.</summary>
    public bool TryGetClient(ulong id, out SignalClientInfo? client)
    {
        client = _clients.TryGetValue(id, out var connection) ? connection.Info : null;
        return client is not null;
    }

    /// <summary>Round trip of a signal PING (op 0x01).</summary>
    /// <exception cref="SignalException">Not registered, timed out, disconnected or a bad reply.</exception>
    public async Task<TimeSpan> PingAsync(ulong id, CancellationToken cancellationToken = default)
    {
        var connection = Find(id);
        var started = Options.TimeProvider.GetTimestamp();
        await connection.CallAsync(SignalOps.Ping, Options.RequestTimeout, cancellationToken);
        return Options.TimeProvider.GetElapsedTime(started);
    }

    /// <summary>Resource usage through TOP (op 0x00).</summary>
    /// <exception cref="SignalException">Not registered, timed out, disconnected or a bad reply.</exception>
    public async Task<ResourceUsage> TopAsync(ulong id, CancellationToken cancellationToken = default)
    {
        var reply = await Find(id).CallAsync(SignalOps.Top, Options.RequestTimeout, cancellationToken);
        return ResourceUsage.FromJson(reply);
    }

    /// <summary>Asks the client to shut down (op 0x02); returns the pid it reports.</summary>
    /// <exception cref="SignalException">Not registered, timed out, disconnected or a bad reply.</exception>
    public async Task<int> ShutdownAsync(ulong id, CancellationToken cancellationToken = default)
    {
        var reply = await Find(id).CallAsync(SignalOps.Shutdown, Options.RequestTimeout, cancellationToken);
        if (!SignalJson.TryGetProperty(reply, "Pid", out var pid) || pid.ValueKind != JsonValueKind.Number || !pid.TryGetInt32(out var value))
        {
            throw new SignalException(SignalErrorKind.BadReply, $"SHUTDOWN reply of client {id} has no numeric Pid");
        }

        return value;
    }

    /// <summary>Stops listening and closes every connection; pending calls fail with <see cref="SignalErrorKind.Disconnected"/>.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _state, 2) == 2)
        {
            return;
        }

        await _stopping.CancelAsync();
        _listener?.Dispose();
        if (_acceptLoop is not null)
        {
            await _acceptLoop;
        }

        foreach (var connection in _connections.Keys)
        {
            connection.Connection.Abort("server stopped");
        }

        await Task.WhenAll(_connections.Values);
        _stopping.Dispose();
    }

    private ServerConnection Find(ulong id)
    {
        if (Volatile.Read(ref _state) != 1)
        {
            throw new SignalException(SignalErrorKind.NotRunning, "the signal server is not running");
        }

        return _clients.TryGetValue(id, out var connection)
            ? connection
            : throw new SignalException(SignalErrorKind.NotRegistered, $"no signal client registered with id {id}");
    }

    /// <summary>
    /// Accepts until disposed. A connection beyond a cap is closed at once. A failed accept (out of descriptors, buffers)
    /// backs off from 10 ms doubling to 1 s and retries for as long as it takes; each episode is reported once when it
    /// starts and once when accepting works again, never once per failure.
    /// </summary>
    private async Task AcceptLoopAsync(Socket listener, ConnectionLimiter limiter, CancellationToken cancellationToken)
    {
        var backoff = TimeSpan.Zero;
        long failures = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync(cancellationToken);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionAborted or SocketError.ConnectionReset)
            {
                continue; // that client gave up before we took it; nothing is wrong with the listener
            }
            catch (SocketException ex)
            {
                if (failures++ == 0)
                {
                    Report(SignalDiagnosticKind.Listener, $"accept failed: {ex.Message} ({ex.SocketErrorCode}); retrying with backoff");
                }

                backoff = backoff == TimeSpan.Zero ? TimeSpan.FromMilliseconds(10) : TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.TicksPerSecond));
                try
                {
                    await Task.Delay(backoff, Options.TimeProvider, cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                continue;
            }

            if (failures > 0)
            {
                Report(SignalDiagnosticKind.Listener, $"accepting again after {failures} failed accepts");
                failures = 0;
                backoff = TimeSpan.Zero;
            }

            Admit(socket, limiter, cancellationToken);
        }
    }

    private void Admit(Socket socket, ConnectionLimiter limiter, CancellationToken cancellationToken)
    {
        var remote = socket.RemoteEndPoint as IPEndPoint;
        var loopback = !TreatClientsAsRemote && remote is not null && IsLoopbackAddress(remote.Address);
        var source = loopback || remote is null ? null : remote.Address.IsIPv4MappedToIPv6 ? remote.Address.MapToIPv4() : remote.Address;
        var admitted = limiter.TryAdmit(source);
        if (admitted != AdmitResult.Admitted)
        {
            socket.Dispose();
            var (reason, why) = admitted switch
            {
                AdmitResult.ListenerFull => ("listener_full", $"{limiter.MaxConnections} connections held (the listener's cap)"),
                AdmitResult.RemoteShareFull => ("remote_full", $"{limiter.MaxRemote} connections held from other hosts (half the listener's cap)"),
                _ => ("address_full", $"{limiter.MaxPerAddress} connections held from {source} (the per-address cap)"),
            };
            SignalMetrics.ConnectionsRefused.Add(1, new KeyValuePair<string, object?>("reason", reason));
            if (_refusals.ShouldReport(out var suppressed))
            {
                Report(SignalDiagnosticKind.ConnectionRefused,
                    $"{remote}: connection refused: {why}{(suppressed > 0 ? $"; {suppressed} more refused since the last report" : "")}");
            }

            return;
        }

        var connection = new ServerConnection(this, new SignalConnection(socket, "server"));
        var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _connections[connection] = tcs.Task;
        _ = Task.Run(async () =>
        {
            try
            {
                await RunConnectionAsync(connection, () => limiter.Release(source), cancellationToken);
            }
            finally
            {
                _connections.TryRemove(connection, out _);
                tcs.SetResult();
            }
        }, CancellationToken.None);
    }

    /// <summary>Serves one connection to its end; <paramref name="releaseSlot"/> runs before the disconnect is announced, so that a client reacting to it finds the slot free.</summary>
    private async Task RunConnectionAsync(ServerConnection connection, Action releaseSlot, CancellationToken cancellationToken)
    {
        string reason;
        try
        {
            connection.ArmRegistrationDeadline();
            reason = await connection.Connection.RunReadLoopAsync(
                connection.OnFrameAsync, () => connection.MaxBodySize, Options.IdleTimeout, Options.TimeProvider, cancellationToken);
        }
        catch (Exception ex)
        {
            // A bug in a handler must cost only this connection.
            reason = "internal error: " + ex.Message;
            connection.Connection.Abort(reason, ConnectionCloseKind.Error);
        }

        connection.Close();
        releaseSlot();
        var info = connection.Info;
        var kind = connection.Connection.CloseKind switch
        {
            ConnectionCloseKind.ProtocolViolation => SignalDiagnosticKind.ProtocolViolation,
            ConnectionCloseKind.Truncated or ConnectionCloseKind.Idle or ConnectionCloseKind.Deadline or ConnectionCloseKind.Error => SignalDiagnosticKind.ConnectionLost,
            _ => (SignalDiagnosticKind?)null, // a normal close, or our own decision already reported
        };
        if (kind is { } reported)
        {
            Report(reported, $"{Describe(connection)}: connection closed: {reason}", connection);
        }

        if (info is not null && _clients.TryRemove(new KeyValuePair<ulong, ServerConnection>(info.Id, connection)))
        {
            SignalMetrics.Registered.Add(-1);
            Raise(ClientDisconnected, info);
        }

        await connection.Connection.DisposeAsync();
    }

    private async ValueTask RegisterAsync(ServerConnection connection, JsonElement? body)
    {
        // Reference §4.7: a REG body of null registers id 0; anything else must be an object with a uint64 Id.
        if (body is not { } json || (json.ValueKind != JsonValueKind.Object && json.ValueKind != JsonValueKind.Null))
        {
            throw new SignalProtocolException("REG body is not a JSON object");
        }

        if (!SignalJson.TryGetUInt64(json, "Id", out var idValue))
        {
            throw new SignalProtocolException("REG Id is not an unsigned integer");
        }

        var id = idValue ?? 0;
        SignalJson.TryGetInt64(json, "Ext", out var ext);
        SignalJson.TryGetInt64(json, "Pid", out var pid);
        var extension = (int)Math.Clamp(ext ?? 0, 0, SignalOps.ExtensionVersion);
        var remote = connection.Connection.RemoteEndPoint;
        var isLoopback = !TreatClientsAsRemote && remote is IPEndPoint ip && IsLoopbackAddress(ip.Address);

        if (!isLoopback && !TokenMatches(SignalJson.GetString(json, "Token")))
        {
            // Never echo the token: only whether one was given.
            var had = SignalJson.GetString(json, "Token") is null ? "no token" : "a wrong token";
            Report(SignalDiagnosticKind.RegistrationRefused, $"{remote}: registration as id {id} refused: remote client presented {had}", connection, id);
            connection.Connection.Abort("registration refused: authentication");
            return;
        }

        // A connection that re-registers under another id gives up the old one.
        if (connection.Info is { } previous && previous.Id != id &&
            _clients.TryRemove(new KeyValuePair<ulong, ServerConnection>(previous.Id, connection)))
        {
            SignalMetrics.Registered.Add(-1);
            Raise(ClientDisconnected, previous);
        }

        connection.Extension = extension;
        for (var attempt = 0; ; attempt++)
        {
            if (_clients.TryAdd(id, connection))
            {
                SignalMetrics.Registered.Add(1);
                break;
            }

            if (!_clients.TryGetValue(id, out var holder))
            {
                continue;
            }

            if (holder == connection)
            {
                break;
            }

            // DESIGN §4: a live holder keeps its id; replacement is for reconnects when the old holder is gone or silent.
            var alive = attempt < 3 && await holder.ProbeAsync(Options.RegistrationProbeTimeout);
            if (alive || attempt >= 3)
            {
                Report(SignalDiagnosticKind.RegistrationRefused,
                    $"{remote}: registration as id {id} refused: id held by live client at {holder.Connection.RemoteEndPoint}", connection, id);
                connection.Connection.Abort("registration refused: id in use");
                return;
            }

            if (_clients.TryUpdate(id, connection, holder))
            {
                Report(SignalDiagnosticKind.IdTakenOver, $"{remote}: id {id} taken over from silent connection {holder.Connection.RemoteEndPoint}", connection, id);
                holder.Connection.Abort($"replaced by a new registration of id {id}");
                break;
            }
        }

        var info = new SignalClientInfo(id, remote, Options.TimeProvider.GetUtcNow(), isLoopback)
        {
            Pid = pid is { } p && p > 0 && p <= int.MaxValue ? (int)p : null,
            Extension = extension,
        };
        connection.Info = info;
        connection.MarkRegistered();

        var reply = SignalJson.Write(w =>
        {
            w.WriteStartObject();
            w.WriteNumber("Id", id);
            if (extension > 0)
            {
                w.WriteNumber("Ext", extension);
            }

            w.WriteEndObject();
        });
        try
        {
            await connection.Connection.SendNormalAsync(SignalOps.Reg | SignalOps.ReplyFlag, reply);
        }
        catch (IOException)
        {
            return; // the read loop sees the close and releases the id
        }

        Raise(ClientRegistered, info);
    }

    private bool TokenMatches(string? presented)
    {
        if (_token is null || presented is null)
        {
            return false;
        }

        return CryptographicOperations.FixedTimeEquals(_token, Encoding.UTF8.GetBytes(presented));
    }

    private static bool IsLoopbackAddress(IPAddress address) =>
        IPAddress.IsLoopback(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address);

    private static string Describe(ServerConnection connection) =>
        connection.Info is { } info ? $"client {info.Id} at {connection.Connection.RemoteEndPoint}" : $"{connection.Connection.RemoteEndPoint}";

    private void Report(SignalDiagnosticKind kind, string message, ServerConnection? connection = null, ulong? id = null)
    {
        try
        {
            Diagnostic?.Invoke(this, message);
            DiagnosticReported?.Invoke(this, new SignalDiagnostic(kind, message, connection?.Connection.RemoteEndPoint, id ?? connection?.Info?.Id));
        }
        catch
        {
            // A faulty diagnostic handler must not break the protocol.
        }
    }

    private void Raise(EventHandler<SignalClientInfo>? handler, SignalClientInfo info)
    {
        try
        {
            handler?.Invoke(this, info);
        }
        catch (Exception ex)
        {
            Report(SignalDiagnosticKind.HandlerFailed, $"event handler for client {info.Id} threw: {ex.Message}", null, info.Id);
        }
    }
}
