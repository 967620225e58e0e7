using System.Collections.Concurrent;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Viscript.Core.Control;
using Viscript.Core.Hosting;

namespace Viscript.Core.Cluster;

/// <summary>Settings of an agent's link to its primary. <see cref="ToString"/> shows public keys only.</summary>
public sealed record AgentLinkOptions
{
    /// <summary>The primary's agent port, <c>host:port</c> (a name is resolved at each connect).</summary>
    public required string Primary { get; init; }

    /// <summary>The primary's public key (pinned: any other certificate is refused).</summary>
    public required string PrimaryKey { get; init; }

    /// <summary>This agent's key (what the primary's allow-list names).</summary>
    public required ClusterKey Key { get; init; }

    /// <summary>First reconnect delay; doubled per failure up to <see cref="MaxBackoff"/>, ±20 % jitter.</summary>
    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Longest reconnect delay.</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>TCP connect, TLS handshake and welcome must complete within this time.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How often the agent reports its load and memory.</summary>
    public TimeSpan StatsInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Timings of the connection.</summary>
    public AgentChannelOptions Channel { get; init; } = AgentChannelOptions.Default;

    /// <summary>viscript version reported in the hello.</summary>
    public string Version { get; init; } = "0";

    /// <summary>Diagnostics.</summary>
    public ILoggerFactory LoggerFactory { get; init; } = NullLoggerFactory.Instance;

    /// <inheritdoc/>
    public override string ToString() => $"AgentLinkOptions {{ Primary = {Primary}, PrimaryKey = {PrimaryKey}, Key = {Key.PublicKey} }}";
}

/// <summary>
/// An agent's side of the cluster: keeps one connection to its primary (reconnecting with backoff and jitter whenever
/// it is lost), reports this host's apps, processes (a full snapshot on every connect, then each changed row), events
/// and load, and serves the primary's requests against the local supervisor. The apps never depend on the link: they
/// keep running while the primary is away, and the next connection brings the primary up to date.
/// <code>
///   Connecting ──welcomed──► Connected ──connection lost──► Waiting ──backoff elapsed──► Connecting
///       │  failed, refused, wrong primary key                   ▲
///       └───────────────────────────────────────────────────────┘       (Stopped from any state on dispose)
/// </code>
/// </summary>
public sealed partial class AgentLink : IAsyncDisposable
{
    /// <summary>Link state (drawn on the type). Values are stable.</summary>
    public enum LinkState
    {
        /// <summary>Connecting and handshaking.</summary>
        Connecting = 0,
        /// <summary>Welcomed by the primary.</summary>
        Connected = 10,
        /// <summary>Waiting out the backoff before the next attempt.</summary>
        Waiting = 20,
        /// <summary>Disposed.</summary>
        Stopped = 30,
    }

    private const int SnapshotChunk = 200;
    private static readonly AgentJsonContext s_json = AgentJsonContext.Default;
    private readonly LocalProcessHost _local;
    private readonly AgentLinkOptions _options;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new();
    private readonly TimeProvider _time;
    private LinkState _state = LinkState.Connecting;
    private Task? _loop;
    private int _disposed;

    /// <summary>Creates the link for <paramref name="local"/> (not started).</summary>
    public AgentLink(LocalProcessHost local, AgentLinkOptions options)
    {
        _local = local;
        _options = options;
        _time = options.Channel.TimeProvider;
        _logger = options.LoggerFactory.CreateLogger("Viscript.Cluster.AgentLink");
    }

    /// <summary>Current state.</summary>
    public LinkState State
    {
        get
        {
            lock (_gate)
            {
                return _state;
            }
        }
    }

    /// <summary>The name the primary gave this host (null until welcomed).</summary>
    public string? Name { get; private set; }

    /// <summary>Why the last attempt or connection ended.</summary>
    public string? LastError { get; private set; }

    /// <summary>Raised on every state change.</summary>
    public event EventHandler<LinkState>? StateChanged;

    /// <summary>Starts connecting.</summary>
    public void Start() => _loop ??= RunAsync(_stop.Token);

    private void TransitionTo(LinkState to)
    {
        lock (_gate)
        {
            var ok = (_state, to) switch
            {
                (LinkState.Connecting, LinkState.Connected or LinkState.Waiting) => true,
                (LinkState.Connected, LinkState.Waiting) => true,
                (LinkState.Waiting, LinkState.Connecting) => true,
                (_, LinkState.Stopped) => true,
                _ => false,
            };
            if (!ok)
            {
                throw new InvalidOperationException($"agent link: {_state} -> {to} is not a valid transition");
            }
            _state = to;
        }
        StateChanged?.Invoke(this, to);
    }

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        var failures = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            var welcomed = false;
            try
            {
                welcomed = await ConnectOnceAsync(cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is SocketException or IOException or AuthenticationException or AgentProtocolException or JsonException
                or OperationCanceledException or AgentRefusedException or ObjectDisposedException)
            {
                LastError = ex is OperationCanceledException ? $"no answer within {_options.HandshakeTimeout.TotalSeconds:0} s" : ex.Message;
                if (ex is AgentRefusedException)
                {
                    Log.Refused(_logger, _options.Primary, ex.Message);
                }
                else
                {
                    Log.ConnectFailed(_logger, _options.Primary, LastError);
                }
            }
            // A connection that was welcomed resets the backoff: the next attempt comes quickly.
            failures = welcomed ? 1 : failures + 1;
            TransitionTo(LinkState.Waiting);
            try
            {
                await Task.Delay(Backoff.Delay(_options.InitialBackoff, _options.MaxBackoff, failures), _time, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            TransitionTo(LinkState.Connecting);
        }
    }

    /// <summary>One connection, from TCP connect to its end. Returns whether the primary welcomed this agent.</summary>
    private async Task<bool> ConnectOnceAsync(CancellationToken cancellationToken)
    {
        var colon = _options.Primary.LastIndexOf(':');
        var host = _options.Primary[..colon].Trim('[', ']');
        var port = int.Parse(_options.Primary[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        using var handshake = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        handshake.CancelAfter(_options.HandshakeTimeout);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(host, port, handshake.Token);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        string? presented = null;
        var ssl = new SslStream(new NetworkStream(socket, ownsSocket: true), leaveInnerStreamOpen: false);
        await using var channel = new AgentChannel(ssl, _options.Channel);
        try
        {
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = "viscript",
                ClientCertificateContext = SslStreamCertificateContext.Create(_options.Key.Certificate, null, offline: true),
                EnabledSslProtocols = SslProtocols.Tls13,
                CertificateRevocationCheckMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck,
                // The primary is known by its key alone (pinned, like an SSH host key): no CA, no name, no dates.
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                {
                    presented = certificate is null ? null : ClusterKey.Fingerprint(certificate);
                    return string.Equals(presented, _options.PrimaryKey, StringComparison.OrdinalIgnoreCase);
                },
            }, handshake.Token);
        }
        catch (AuthenticationException) when (presented is not null && !string.Equals(presented, _options.PrimaryKey, StringComparison.OrdinalIgnoreCase))
        {
            throw new AuthenticationException($"the server at {_options.Primary} has key {presented}, not the pinned primary key {_options.PrimaryKey}: not connecting");
        }

        await channel.SendAsync(AgentOp.Hello, new AgentHello(AgentProtocol.Version, _options.Version, Environment.MachineName, Environment.ProcessId), s_json.AgentHello, handshake.Token);
        var welcome = await channel.ReadOneAsync(AgentProtocol.MaxHelloSize, frame =>
        {
            var reader = new Utf8JsonReader(frame.Body);
            return frame.Op switch
            {
                AgentOp.Welcome => JsonSerializer.Deserialize(ref reader, s_json.AgentWelcome) ?? throw new AgentProtocolException("empty welcome"),
                AgentOp.Refused => throw new AgentRefusedException((JsonSerializer.Deserialize(ref reader, s_json.AgentRefusal)?.Reason) ?? "refused"),
                _ => throw new AgentProtocolException($"expected a welcome, got {frame.Op}"),
            };
        }, handshake.Token);
        Name = welcome.Name;
        TransitionTo(LinkState.Connected);
        Log.Connected(_logger, _options.Primary, welcome.Primary, welcome.Name);
        using var session = new Session(this, channel);
        LastError = await session.RunAsync(cancellationToken);
        Log.Disconnected(_logger, _options.Primary, LastError);
        return true;
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        await _stop.CancelAsync();
        if (_loop is not null)
        {
            await _loop;
        }
        TransitionTo(LinkState.Stopped);
        _stop.Dispose();
    }

    /// <summary>One welcomed connection: reports and requests.</summary>
    private sealed class Session(AgentLink link, AgentChannel channel) : IDisposable
    {
        private readonly Lock _dirtyGate = new();
        private readonly HashSet<ulong> _dirty = [];
        private readonly SemaphoreSlim _flushGate = new(1, 1);
        private readonly Channel<bool> _dirtySignal = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
        private readonly Channel<ProcessEvent> _events = Channel.CreateBounded<ProcessEvent>(new BoundedChannelOptions(1024) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });
        private readonly ConcurrentDictionary<long, CancellationTokenSource> _follows = new();

        private LocalProcessHost Local => link._local;

        public void Dispose() => _flushGate.Dispose();

        public async Task<string> RunAsync(CancellationToken cancellationToken)
        {
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, channel.Closed);
            // Subscribed before the snapshot: a change during it is sent again afterwards (rows are idempotent).
            Local.Supervisor.Changed += OnChanged;
            Task[] pumps = [];
            try
            {
                await channel.SendAsync(AgentOp.Apps, new AgentApps(Local.Apps), s_json.AgentApps, stop.Token);
                await SendSnapshotAsync(stop.Token);
                pumps = [FlushLoopAsync(stop.Token), EventLoopAsync(stop.Token), StatsLoopAsync(stop.Token)];
                return await channel.RunAsync(OnFrame, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return channel.CloseReason ?? "stopped";
            }
            finally
            {
                Local.Supervisor.Changed -= OnChanged;
                await stop.CancelAsync();
                foreach (var (_, follow) in _follows)
                {
                    await follow.CancelAsync();
                }
                await Task.WhenAll(pumps);
            }
        }

        private void OnChanged(object? sender, ProcessEvent e)
        {
            if (e.Id != 0)
            {
                lock (_dirtyGate)
                {
                    _dirty.Add(e.Id);
                }
                _dirtySignal.Writer.TryWrite(true);
            }
            _events.Writer.TryWrite(e);
        }

        private async Task SendSnapshotAsync(CancellationToken cancellationToken)
        {
            await _flushGate.WaitAsync(cancellationToken);
            try
            {
                var all = Local.List();
                var first = true;
                for (var i = 0; first || i < all.Count; i += SnapshotChunk)
                {
                    var piece = all.Skip(i).Take(SnapshotChunk).ToList();
                    await channel.SendAsync(AgentOp.Processes, new ProcessUpdate(first, piece, [], i + SnapshotChunk >= all.Count), s_json.ProcessUpdate, cancellationToken);
                    first = false;
                }
                await channel.SendAsync(AgentOp.Stats, HostStatsReader.Read(all), s_json.HostStats, cancellationToken);
            }
            finally
            {
                _flushGate.Release();
            }
        }

        /// <summary>Sends the rows that changed; a reply waits for this, so it never overtakes the state it produced.</summary>
        private async Task FlushDirtyAsync(CancellationToken cancellationToken)
        {
            await _flushGate.WaitAsync(cancellationToken);
            try
            {
                ulong[] ids;
                lock (_dirtyGate)
                {
                    ids = [.. _dirty];
                    _dirty.Clear();
                }
                if (ids.Length == 0)
                {
                    return;
                }
                var rows = new List<ProcessInfo>();
                var removed = new List<ulong>();
                foreach (var id in ids)
                {
                    try
                    {
                        rows.Add(await Local.GetAsync(id, cancellationToken));
                    }
                    catch (ViscriptException ex) when (ex.Code == ErrorCode.NoSuchProcess)
                    {
                        removed.Add(id);
                    }
                }
                for (var i = 0; i < Math.Max(rows.Count, 1); i += SnapshotChunk)
                {
                    await channel.SendAsync(AgentOp.Processes, new ProcessUpdate(false, rows.Skip(i).Take(SnapshotChunk).ToList(), i == 0 ? removed : []), s_json.ProcessUpdate, cancellationToken);
                }
            }
            finally
            {
                _flushGate.Release();
            }
        }

        private async Task FlushLoopAsync(CancellationToken cancellationToken)
        {
            try
            {
                while (await _dirtySignal.Reader.WaitToReadAsync(cancellationToken))
                {
                    _dirtySignal.Reader.TryRead(out _);
                    await FlushDirtyAsync(cancellationToken);
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        private async Task EventLoopAsync(CancellationToken cancellationToken)
        {
            try
            {
                await foreach (var e in _events.Reader.ReadAllAsync(cancellationToken))
                {
                    await channel.SendAsync(AgentOp.Event, e, s_json.ProcessEvent, cancellationToken);
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        private async Task StatsLoopAsync(CancellationToken cancellationToken)
        {
            try
            {
                while (!cancellationToken.IsCancellationRequested)
                {
                    await Task.Delay(link._options.StatsInterval, link._time, cancellationToken);
                    await channel.SendAsync(AgentOp.Stats, HostStatsReader.Read(Local.List()), s_json.HostStats, cancellationToken);
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        private void OnFrame(AgentFrame frame)
        {
            switch (frame.Op)
            {
                case AgentOp.Request:
                    var reader = new Utf8JsonReader(frame.Body);
                    var request = JsonSerializer.Deserialize(ref reader, s_json.AgentRequest) ?? throw new AgentProtocolException("empty request");
                    _ = Task.Run(() => HandleAsync(request));
                    break;
                case AgentOp.Keepalive:
                    break;
                default:
                    throw new AgentProtocolException($"a primary does not send {frame.Op}");
            }
        }

        private async Task HandleAsync(AgentRequest request)
        {
            var cancellationToken = channel.Closed;
            AgentReply reply;
            try
            {
                reply = new AgentReply(request.Id, 0, null, await ExecuteAsync(request, cancellationToken));
            }
            catch (ViscriptException ex)
            {
                reply = new AgentReply(request.Id, (int)ex.Code, ex.Message, null);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                Log.RequestFailed(link._logger, request.Method, ex);
                reply = new AgentReply(request.Id, (int)ErrorCode.Internal, $"{request.Method} failed on the agent: {ex.Message}", null);
            }
            try
            {
                await FlushDirtyAsync(cancellationToken);
                await channel.SendAsync(AgentOp.Reply, reply, s_json.AgentReply, cancellationToken);
            }
            catch (OperationCanceledException)
            {
            }
        }

        private async Task<JsonElement?> ExecuteAsync(AgentRequest r, CancellationToken cancellationToken)
        {
            switch (r.Method)
            {
                case AgentMethods.Start:
                    return Json(await Local.StartAsync(r.App ?? throw new ViscriptException(ErrorCode.Usage, "start needs an app"), r.Args, cancellationToken), s_json.ProcessInfo);
                case AgentMethods.Get:
                    return Json(await Local.GetAsync(r.Target, cancellationToken), s_json.ProcessInfo);
                case AgentMethods.Ping:
                    return Json(new PingReport(r.Target, (await Local.PingAsync(r.Target, cancellationToken)).TotalMilliseconds), s_json.PingReport);
                case AgentMethods.ResourceUsage:
                    return Json(await Local.ResourceUsageAsync(r.Target, cancellationToken), s_json.ResourceReport);
                case AgentMethods.Stop:
                    return Json(await Local.StopAsync(r.Target, cancellationToken), s_json.StopReport);
                case AgentMethods.Kill:
                    return Json(await Local.KillAsync(r.Target, cancellationToken), s_json.StopReport);
                case AgentMethods.Restart:
                    return Json(await Local.RestartAsync(r.Target, cancellationToken), s_json.StopReport);
                case AgentMethods.Logs:
                    return Json((await Local.LogsAsync(r.Target, r.Count, cancellationToken)).ToList(), s_json.ListLogLineInfo);
                case AgentMethods.Input:
                    await Local.WriteInputAsync(r.Target, r.Line ?? "", cancellationToken);
                    return null;
                case AgentMethods.Attachable:
                    return Json(await Local.GetAttachableAsync(r.Target, cancellationToken), s_json.ProcessInfo);
                case AgentMethods.Samples:
                    return Json((await Local.SamplesAsync(cancellationToken)).ToList(), s_json.ListSampleSeries);
                case AgentMethods.Follow:
                    Local.Supervisor.GetLogs(r.Target); // NoSuchProcess before anything streams
                    StartFollow(r);
                    return null;
                case AgentMethods.Unfollow:
                    if (_follows.TryRemove(r.Stream, out var follow))
                    {
                        await follow.CancelAsync();
                    }
                    return null;
                default:
                    throw new ViscriptException(ErrorCode.UnknownCommand, $"this agent does not know the request '{r.Method}'");
            }
        }

        private void StartFollow(AgentRequest r)
        {
            var cts = CancellationTokenSource.CreateLinkedTokenSource(channel.Closed);
            if (!_follows.TryAdd(r.Stream, cts))
            {
                cts.Dispose();
                throw new ViscriptException(ErrorCode.Usage, $"stream {r.Stream} is already followed");
            }
            _ = Task.Run(async () =>
            {
                try
                {
                    await foreach (var item in Local.FollowAsync(r.Target, r.Count, cts.Token))
                    {
                        await channel.SendAsync(AgentOp.Stream, new StreamItem(r.Stream, item.Kind, item.Line, item.End), s_json.StreamItem, cts.Token);
                    }
                }
                catch (ViscriptException ex)
                {
                    await channel.SendAsync(AgentOp.Stream, new StreamItem(r.Stream, "error", Code: (int)ex.Code, Message: ex.Message), s_json.StreamItem, CancellationToken.None);
                }
                catch (OperationCanceledException)
                {
                }
                finally
                {
                    _follows.TryRemove(r.Stream, out _);
                    cts.Dispose();
                }
            });
        }

        private static JsonElement Json<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type) => JsonSerializer.SerializeToElement(value, type);
    }

    // Event ids 4340-4349: an agent's link to its primary.
    private static partial class Log
    {
        [LoggerMessage(EventId = 4340, Level = LogLevel.Information, Message = "agent: connected to primary {Primary} ({PrimaryName}), named {Name} there")]
        public static partial void Connected(ILogger logger, string primary, string primaryName, string name);

        [LoggerMessage(EventId = 4341, Level = LogLevel.Warning, Message = "agent: lost primary {Primary}: {Reason}; reconnecting (the apps keep running)")]
        public static partial void Disconnected(ILogger logger, string primary, string reason);

        [LoggerMessage(EventId = 4342, Level = LogLevel.Warning, Message = "agent: cannot reach primary {Primary}: {Reason}; retrying")]
        public static partial void ConnectFailed(ILogger logger, string primary, string reason);

        [LoggerMessage(EventId = 4343, Level = LogLevel.Error, Message = "agent: primary {Primary} refused this agent: {Reason}; retrying (add this agent's key to its allow-list)")]
        public static partial void Refused(ILogger logger, string primary, string reason);

        [LoggerMessage(EventId = 4344, Level = LogLevel.Error, Message = "agent: request {Method} failed")]
        public static partial void RequestFailed(ILogger logger, string method, Exception exception);
    }
}

/// <summary>The primary refused this agent (its key is not on the allow-list, or the protocol differs).</summary>
public sealed class AgentRefusedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public AgentRefusedException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public AgentRefusedException() : this("refused by the primary") { }

    /// <summary>Creates the exception.</summary>
    public AgentRefusedException(string message, Exception inner) : base(message, inner) { }
}
