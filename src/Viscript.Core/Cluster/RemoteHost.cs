using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Viscript.Core.Control;

namespace Viscript.Core.Cluster;

/// <summary>
/// An agent of this primary (a line of the allow-list) as an <see cref="IProcessHost"/>. Reads are served from what the
/// agent reported (a full snapshot when it connects, then every changed row, before the answer to the request that
/// changed it); actions are requests over the agent connection. While the agent is not connected every action fails
/// fast with <see cref="ErrorCode.HostUnreachable"/> and its last known rows stay listed as unreachable.
/// <code>
///   NeverSeen ──agent connects, snapshot in──► Connected ──connection lost (closed, silent, violation)──► Unreachable
///                                   ▲    │ a new connection with the same key replaces the old one      │
///                                   │    └──────────────────────────────────────────────────────────────┤
///                                   └─────────────────── agent connects, snapshot in ◄──────────────────┘
/// </code>
/// </summary>
public sealed partial class RemoteHost : IProcessHost
{
    /// <summary>Connection state of an agent (drawn on the type). Values are stable.</summary>
    public enum HostState
    {
        /// <summary>Listed, never connected since this primary started.</summary>
        NeverSeen = 0,
        /// <summary>Connected now.</summary>
        Connected = 10,
        /// <summary>Was connected; the connection was lost.</summary>
        Unreachable = 20,
    }

    /// <summary>Upper bound of a quick request (ping, ru, logs, start...); the agent's own timeouts are shorter.</summary>
    public static readonly TimeSpan QuickTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Upper bound of a stop (sd, kill, restart): the agent escalates on its own, within its apps' stop timeouts.</summary>
    public static readonly TimeSpan StopTimeout = TimeSpan.FromMinutes(5);

    private static readonly AgentJsonContext s_json = AgentJsonContext.Default;
    private readonly Lock _gate = new();
    private readonly Dictionary<ulong, (ProcessInfo Info, long At)> _processes = [];
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Action<ProcessEvent> _publish;
    private Connection? _current;
    private HostState _state;
    private DateTimeOffset? _since;
    private DateTimeOffset? _lastSeen;
    private string? _reason;
    private AgentHello? _hello;
    private EndPoint? _address;
    private HostStats? _stats;
    private IReadOnlyList<AppInfo> _apps = [];
    private long _nextId;

    /// <summary>Creates the host for an allow-list line.</summary>
    public RemoteHost(string name, string publicKey, TimeProvider time, ILogger logger, Action<ProcessEvent> publish)
    {
        Name = name;
        PublicKey = publicKey;
        _time = time;
        _logger = logger;
        _publish = publish;
    }

    /// <inheritdoc/>
    public string Name { get; }

    /// <summary>The agent's key (from the allow-list).</summary>
    public string PublicKey { get; }

    /// <inheritdoc/>
    public bool IsLocal => false;

    /// <summary>Current state.</summary>
    public HostState State
    {
        get
        {
            lock (_gate)
            {
                return _state;
            }
        }
    }

    /// <inheritdoc/>
    public IReadOnlyList<AppInfo> Apps
    {
        get
        {
            lock (_gate)
            {
                return _apps;
            }
        }
    }

    /// <summary>What <c>hosts</c> shows.</summary>
    public HostInfo Describe()
    {
        lock (_gate)
        {
            var last = _current is { } c ? c.Channel.LastReceived : _lastSeen;
            return new HostInfo(Name, StateName(_state), false, last, _since, _hello?.Version, _address?.ToString(), PublicKey, _hello?.HostName, _stats,
                _state == HostState.Unreachable ? _reason : null);
        }
    }

    /// <summary>The state as <c>hosts</c> prints it.</summary>
    public static string StateName(HostState state) => state switch
    {
        HostState.Connected => "connected",
        HostState.Unreachable => "unreachable",
        _ => "never-seen",
    };

    /// <inheritdoc/>
    public IReadOnlyList<ProcessInfo> List()
    {
        lock (_gate)
        {
            var connected = _state == HostState.Connected;
            return [.. _processes.OrderBy(p => p.Key).Select(p => Current(p.Value.Info, p.Value.At, connected))];
        }
    }

    // Uptime as the agent measured it plus the time since it said so: no dependence on the two clocks agreeing.
    private ProcessInfo Current(ProcessInfo info, long at, bool connected)
    {
        if (!connected)
        {
            return info with { Display = "Unreachable", UptimeSeconds = null };
        }
        return info.UptimeSeconds is { } up ? info with { UptimeSeconds = up + _time.GetElapsedTime(at).TotalSeconds } : info;
    }

    /// <summary>Whether <paramref name="key"/> is the one this host was listed with.</summary>
    public bool Matches(string key) => string.Equals(key, PublicKey, StringComparison.Ordinal);

    /// <summary>
    /// Serves one authenticated, welcomed agent connection until it ends (replacing an older one), then marks the host
    /// unreachable. Returns the reason it ended.
    /// </summary>
    public async Task<string> RunAsync(AgentChannel channel, AgentHello hello, EndPoint? address, CancellationToken cancellationToken)
    {
        var connection = new Connection(channel);
        Connection? old;
        lock (_gate)
        {
            old = _current;
            _current = connection;
            _hello = hello;
            _address = address;
            // Connected (and its rows current) once the agent's full snapshot is in: see Apply.
        }
        old?.Channel.Close($"replaced by a new connection from {address}");
        var reason = await channel.RunAsync(frame => OnFrame(connection, frame), cancellationToken);
        lock (_gate)
        {
            if (ReferenceEquals(_current, connection))
            {
                _current = null;
                _lastSeen = channel.LastReceived;
                _reason = reason;
                if (_state == HostState.Connected)
                {
                    TransitionTo(HostState.Unreachable, reason);
                }
            }
        }
        connection.Fail(new ViscriptException(ErrorCode.HostUnreachable, $"lost the connection to host {Name} during the call ({reason}); its apps keep running there"));
        return reason;
    }

    /// <summary>Closes the connection (the agent left the allow-list, or the primary stops).</summary>
    public void Disconnect(string reason)
    {
        Connection? c;
        lock (_gate)
        {
            c = _current;
        }
        c?.Channel.Close(reason);
    }

    // Caller holds _gate. The one place the state changes.
    private void TransitionTo(HostState to, string why)
    {
        var from = _state;
        var allowed = (from, to) switch
        {
            (HostState.NeverSeen, HostState.Connected) => true,
            (HostState.Connected, HostState.Connected) => true, // a new connection replaced the old one
            (HostState.Connected, HostState.Unreachable) => true,
            (HostState.Unreachable, HostState.Connected) => true,
            _ => false,
        };
        if (!allowed)
        {
            throw new InvalidOperationException($"host {Name}: {from} -> {to} is not a valid transition");
        }
        _state = to;
        _since = _time.GetUtcNow();
        if (to == HostState.Connected)
        {
            Log.Connected(_logger, Name, why);
        }
        else
        {
            Log.Unreachable(_logger, Name, why);
        }
        _publish(new ProcessEvent(_since.Value, "host", 0, null, StateName(from), StateName(to), null, null, $"host {Name}: {StateName(to)} ({why})", Host: Name));
    }

    private void OnFrame(Connection connection, AgentFrame frame)
    {
        switch (frame.Op)
        {
            case AgentOp.Reply:
                var reply = Read(frame, s_json.AgentReply);
                if (connection.Pending.TryRemove(reply.Id, out var waiter))
                {
                    waiter.TrySetResult(reply);
                }
                break;
            case AgentOp.Processes:
                Apply(connection, Read(frame, s_json.ProcessUpdate));
                break;
            case AgentOp.Event:
                var e = Read(frame, s_json.ProcessEvent);
                _publish(e with { Host = Name });
                break;
            case AgentOp.Stats:
                var stats = Read(frame, s_json.HostStats);
                lock (_gate)
                {
                    _stats = stats;
                }
                break;
            case AgentOp.Stream:
                var item = Read(frame, s_json.StreamItem);
                if (connection.Streams.TryGetValue(item.Stream, out var stream))
                {
                    stream.Writer.TryWrite(item);
                }
                break;
            case AgentOp.Apps:
                var apps = Read(frame, s_json.AgentApps);
                lock (_gate)
                {
                    _apps = [.. apps.Apps.OrderBy(a => a.Name, StringComparer.OrdinalIgnoreCase)];
                }
                break;
            case AgentOp.Keepalive:
                break;
            default:
                throw new AgentProtocolException($"an agent does not send {frame.Op}");
        }
    }

    private static T Read<T>(AgentFrame frame, JsonTypeInfo<T> type)
    {
        var reader = new Utf8JsonReader(frame.Body);
        return JsonSerializer.Deserialize(ref reader, type) ?? throw new AgentProtocolException($"{frame.Op} without a body");
    }

    private void Apply(Connection connection, ProcessUpdate update)
    {
        var now = _time.GetTimestamp();
        lock (_gate)
        {
            if (!ReferenceEquals(_current, connection))
            {
                return; // a replaced connection's late frame
            }
            if (update.Full)
            {
                _processes.Clear();
            }
            foreach (var p in update.Processes)
            {
                _processes[p.Id] = (p with { Host = null }, now);
            }
            foreach (var id in update.Removed)
            {
                _processes.Remove(id);
            }
            if (update.Last && !connection.Synced)
            {
                // The whole table is in: from now on the rows are current, and the host says so.
                connection.Synced = true;
                TransitionTo(HostState.Connected, $"connected from {_address} (viscript {_hello?.Version}, host name {_hello?.HostName})");
            }
        }
    }

    private ViscriptException Unreachable()
    {
        lock (_gate)
        {
            return _state == HostState.NeverSeen
                ? new ViscriptException(ErrorCode.HostUnreachable, $"Host {Name} has not connected to this primary yet (see 'hosts').")
                : new ViscriptException(ErrorCode.HostUnreachable,
                    $"Host {Name} is unreachable since {_since?.ToLocalTime().ToString("HH:mm:ss", CultureInfo.InvariantCulture)} ({_reason}); its apps keep running there.");
        }
    }

    private async Task<JsonElement?> CallAsync(AgentRequest request, TimeSpan timeout, CancellationToken cancellationToken)
    {
        Connection connection;
        lock (_gate)
        {
            connection = _current ?? throw Unreachable();
        }
        var id = Interlocked.Increment(ref _nextId);
        var waiter = new TaskCompletionSource<AgentReply>(TaskCreationOptions.RunContinuationsAsynchronously);
        connection.Pending[id] = waiter;
        try
        {
            if (!await connection.Channel.SendAsync(AgentOp.Request, request with { Id = id }, s_json.AgentRequest, cancellationToken))
            {
                throw Unreachable();
            }
            AgentReply reply;
            try
            {
                reply = await waiter.Task.WaitAsync(timeout, _time, cancellationToken);
            }
            catch (TimeoutException)
            {
                throw new ViscriptException(ErrorCode.HostUnreachable, $"Host {Name} did not answer '{request.Method}' within {timeout.TotalSeconds:0} s.");
            }
            if (reply.Code != 0)
            {
                throw new ViscriptException((ErrorCode)reply.Code, $"{Name}: {reply.Message}");
            }
            return reply.Result;
        }
        finally
        {
            connection.Pending.TryRemove(id, out _);
        }
    }

    private async Task<T> CallAsync<T>(AgentRequest request, JsonTypeInfo<T> type, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var result = await CallAsync(request, timeout, cancellationToken);
        try
        {
            return result is { ValueKind: not JsonValueKind.Null } r ? r.Deserialize(type) ?? throw Bad(request) : throw Bad(request);
        }
        catch (JsonException ex)
        {
            throw new ViscriptException(ErrorCode.Internal, $"Host {Name} answered '{request.Method}' with something unreadable: {ex.Message}");
        }
    }

    private ViscriptException Bad(AgentRequest request) => new(ErrorCode.Internal, $"Host {Name} answered '{request.Method}' without a result.");

    /// <inheritdoc/>
    public Task<ProcessInfo> StartAsync(string app, IReadOnlyList<string>? args, CancellationToken cancellationToken = default) =>
        CallAsync(new AgentRequest(0, AgentMethods.Start, App: app, Args: args), s_json.ProcessInfo, QuickTimeout, cancellationToken);

    /// <inheritdoc/>
    public Task<ProcessInfo> GetAsync(ulong id, CancellationToken cancellationToken = default) =>
        CallAsync(new AgentRequest(0, AgentMethods.Get, id), s_json.ProcessInfo, QuickTimeout, cancellationToken);

    /// <inheritdoc/>
    public async Task<TimeSpan> PingAsync(ulong id, CancellationToken cancellationToken = default) =>
        TimeSpan.FromMilliseconds((await CallAsync(new AgentRequest(0, AgentMethods.Ping, id), s_json.PingReport, QuickTimeout, cancellationToken)).Milliseconds);

    /// <inheritdoc/>
    public Task<ResourceReport> ResourceUsageAsync(ulong id, CancellationToken cancellationToken = default) =>
        CallAsync(new AgentRequest(0, AgentMethods.ResourceUsage, id), s_json.ResourceReport, QuickTimeout, cancellationToken);

    /// <inheritdoc/>
    public Task<StopReport> StopAsync(ulong id, CancellationToken cancellationToken = default) =>
        CallAsync(new AgentRequest(0, AgentMethods.Stop, id), s_json.StopReport, StopTimeout, cancellationToken);

    /// <inheritdoc/>
    public Task<StopReport> KillAsync(ulong id, CancellationToken cancellationToken = default) =>
        CallAsync(new AgentRequest(0, AgentMethods.Kill, id), s_json.StopReport, StopTimeout, cancellationToken);

    /// <inheritdoc/>
    public Task<StopReport> RestartAsync(ulong id, CancellationToken cancellationToken = default) =>
        CallAsync(new AgentRequest(0, AgentMethods.Restart, id), s_json.StopReport, StopTimeout, cancellationToken);

    /// <inheritdoc/>
    public async Task<IReadOnlyList<LogLineInfo>> LogsAsync(ulong id, int count, CancellationToken cancellationToken = default) =>
        await CallAsync(new AgentRequest(0, AgentMethods.Logs, id, Count: count), s_json.ListLogLineInfo, QuickTimeout, cancellationToken);

    /// <inheritdoc/>
    public async Task WriteInputAsync(ulong id, string line, CancellationToken cancellationToken = default) =>
        await CallAsync(new AgentRequest(0, AgentMethods.Input, id, Line: line), QuickTimeout, cancellationToken);

    /// <inheritdoc/>
    public Task<ProcessInfo> GetAttachableAsync(ulong id, CancellationToken cancellationToken = default) =>
        CallAsync(new AgentRequest(0, AgentMethods.Attachable, id), s_json.ProcessInfo, QuickTimeout, cancellationToken);

    /// <inheritdoc/>
    public async Task<IReadOnlyList<SampleSeries>> SamplesAsync(CancellationToken cancellationToken = default) =>
        await CallAsync(new AgentRequest(0, AgentMethods.Samples), s_json.ListSampleSeries, QuickTimeout, cancellationToken);

    /// <inheritdoc/>
    public async IAsyncEnumerable<LogStreamItem> FollowAsync(ulong id, int tail, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        Connection connection;
        lock (_gate)
        {
            connection = _current ?? throw Unreachable();
        }
        var streamId = Interlocked.Increment(ref _nextId);
        // A viewer that cannot keep up loses the oldest lines, as a local follower does; the connection never waits for it.
        var items = Channel.CreateBounded<StreamItem>(new BoundedChannelOptions(10_000) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });
        connection.Streams[streamId] = items;
        var ended = false;
        try
        {
            await CallAsync(new AgentRequest(0, AgentMethods.Follow, id, Count: tail, Stream: streamId), QuickTimeout, cancellationToken);
            await foreach (var item in items.Reader.ReadAllAsync(cancellationToken))
            {
                switch (item.Kind)
                {
                    case "line" or "partial":
                        yield return new LogStreamItem(item.Kind, item.Line, null);
                        break;
                    case "end":
                        ended = true;
                        yield return new LogStreamItem("end", null, item.End);
                        yield break;
                    case "error":
                        ended = true;
                        throw new ViscriptException((ErrorCode)item.Code, $"{Name}: {item.Message}");
                }
            }
            ended = true;
        }
        finally
        {
            connection.Streams.TryRemove(streamId, out _);
            if (!ended && !connection.Channel.Closed.IsCancellationRequested)
            {
                // The viewer left: the agent stops sending (fire and forget; a lost message costs a few lines).
                _ = connection.Channel.SendAsync(AgentOp.Request, new AgentRequest(0, AgentMethods.Unfollow, id, Stream: streamId), s_json.AgentRequest, CancellationToken.None).AsTask();
            }
        }
    }

    /// <summary>One agent connection: its calls in flight and its followed logs.</summary>
    private sealed class Connection(AgentChannel channel)
    {
        public AgentChannel Channel { get; } = channel;

        /// <summary>The agent's first full snapshot has arrived (guarded by the host's lock).</summary>
        public bool Synced { get; set; }

        public ConcurrentDictionary<long, TaskCompletionSource<AgentReply>> Pending { get; } = new();

        public ConcurrentDictionary<long, Channel<StreamItem>> Streams { get; } = new();

        public void Fail(Exception error)
        {
            foreach (var (_, waiter) in Pending)
            {
                waiter.TrySetException(error);
            }
            foreach (var (_, stream) in Streams)
            {
                stream.Writer.TryComplete(error);
            }
        }
    }

    // Event ids 4300-4319: the primary's view of its agents.
    private static partial class Log
    {
        [LoggerMessage(EventId = 4300, Level = LogLevel.Information, Message = "agent {Name}: {Why}")]
        public static partial void Connected(ILogger logger, string name, string why);

        [LoggerMessage(EventId = 4301, Level = LogLevel.Warning, Message = "agent {Name} unreachable: {Why}; its apps keep running there")]
        public static partial void Unreachable(ILogger logger, string name, string why);
    }
}
