using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Skywire.Core.Channels;

/// <summary>
/// Accepts TCP connections until cancelled and serves each on its own task, keeping the tasks so that a server can
/// wait for them when it stops (the manager's control listener, the node's app API, the messenger). It bounds what
/// strangers can hold (<see cref="ListenerLimits"/>): connections in all and per source address, and never more than
/// the descriptor limit leaves room for. At a limit it closes the oldest connection that has not authenticated yet
/// (the server calls <see cref="Authenticated"/> after a valid hello), so a flood of idle connections cannot lock
/// out a legitimate client. An accept that fails (EMFILE, ENFILE, ENOBUFS, ENOMEM) frees such a connection, waits
/// with backoff and accepts again: the loop ends only when the listener stops.
/// </summary>
public sealed partial class TcpConnectionHost
{
    /// <summary>Descriptors kept free for everything else the process opens (files, outgoing connections, the runtime).</summary>
    private const int DescriptorReserve = 32;

    /// <summary>
    /// Evicted connections whose server has not closed them yet: while this many are in flight, a newcomer at a
    /// limit is refused instead of evicting more, so that descriptors stay bounded by the limit plus this.
    /// </summary>
    private const int MaxEvicting = 16;

    /// <summary>Admissions between two checks of the descriptor limit (it can change while the process runs: prlimit).</summary>
    private const int BudgetCheckInterval = 16;

    /// <summary>
    /// Descriptors held open (on /dev/null) and given up the moment an accept fails for lack of them, so that the
    /// runtime (which aborts with "Out of memory." when it cannot get one) has room while the loop makes room.
    /// </summary>
    private const int EmergencyDescriptors = 8;

    /// <summary>Below this many free descriptors (last counted) they are counted again before every accept.</summary>
    private const long NearLimit = 64;

    /// <summary>No accept while this many or fewer descriptors are free: they are the runtime's (threads) and the process's.</summary>
    private const long MinFree = 16;

    /// <summary>Accept-failure episodes are reported at most once in this time (the rest are counted in the next report).</summary>
    private static readonly TimeSpan LogInterval = TimeSpan.FromSeconds(10);

    private readonly ListenerLimits _limits;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Lock _sync = new();
    private readonly List<Task> _tasks = [];
    private readonly Dictionary<Socket, Entry> _entries = [];
    private readonly Dictionary<IPAddress, int> _perSource = [];
    private readonly LinkedList<Entry> _pending = new();
    private readonly List<SafeHandle> _emergency = [];
    private int _capacity;
    private int _sinceBudgetCheck;
    private int _evicting;
    private long _evicted;
    private long _refused;
    private long _acceptFailures;
    private long _lastFree;
    private long? _failingLoggedAt;
    private int _episodesNotLogged;
    private bool _recoveryToLog;

    /// <summary>A host with <paramref name="limits"/> (default <see cref="ListenerLimits.Default"/>); its first descriptor budget is read now.</summary>
    public TcpConnectionHost(ListenerLimits? limits = null, ILogger? logger = null, TimeProvider? time = null)
    {
        _limits = limits ?? ListenerLimits.Default;
        var errors = _limits.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("invalid listener limits: " + string.Join("; ", errors), nameof(limits));
        }

        _logger = logger ?? NullLogger.Instance;
        _time = time ?? TimeProvider.System;
        _capacity = Math.Max(1, Math.Min(_limits.MaxConnections, DescriptorBudget(0) ?? int.MaxValue));
        TakeEmergencyDescriptors();
    }

    /// <summary>Connections held now.</summary>
    public int Count
    {
        get
        {
            lock (_sync)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>Connections closed to make room for newer ones (unauthenticated, oldest first).</summary>
    public long Evicted => Interlocked.Read(ref _evicted);

    /// <summary>Connections closed at once because every held one was authenticated.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Accepts that failed (descriptor or memory exhaustion) and were retried.</summary>
    public long AcceptFailures => Interlocked.Read(ref _acceptFailures);

    /// <summary>Accepts on <paramref name="listener"/> until <paramref name="cancellationToken"/> fires or the listener stops.</summary>
    public Task AcceptLoopAsync(TcpListener listener, Func<Socket, Task> serve, CancellationToken cancellationToken) =>
        AcceptLoopAsync(listener.Server, serve, cancellationToken);

    /// <summary>Accepts until <paramref name="cancellationToken"/> fires or the listener stops; each admitted socket (NoDelay) goes to <paramref name="serve"/>.</summary>
    public async Task AcceptLoopAsync(Socket listener, Func<Socket, Task> serve, CancellationToken cancellationToken)
    {
        var backoff = new Backoff(_limits.AcceptRetryDelay, _limits.MaxAcceptRetryDelay);
        while (!cancellationToken.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                if (Volatile.Read(ref _lastFree) < NearLimit && DescriptorsFree() is { } free && (_lastFree = free) <= MinFree)
                {
                    // Near the limit (other listeners, files or the runtime hold the descriptors): taking one more could
                    // leave the runtime none for a thread, and it aborts ("Out of memory."). Make room and wait instead.
                    throw new SocketException((int)SocketError.TooManyOpenSockets);
                }

                socket = await listener.AcceptAsync(cancellationToken);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException ex) when (cancellationToken.IsCancellationRequested || IsListenerGone(ex.SocketErrorCode))
            {
                return;
            }
            catch (SocketException ex)
            {
                // Out of descriptors or memory: make room, wait, and accept again (never spin, never give up).
                Interlocked.Increment(ref _acceptFailures);
                ReleaseEmergencyDescriptors();
                Volatile.Write(ref _lastFree, 0);
                if (backoff.Attempts == 0)
                {
                    // At most one report per LogInterval: a process that sits at its limit (other listeners or files
                    // hold the descriptors) fails, recovers and fails again many times a second.
                    var now = _time.GetTimestamp();
                    if (_failingLoggedAt is not { } last || _time.GetElapsedTime(last, now) >= LogInterval)
                    {
                        Log.AcceptFailing(_logger, ex.SocketErrorCode, Count, _episodesNotLogged);
                        _failingLoggedAt = now;
                        _episodesNotLogged = 0;
                        _recoveryToLog = true;
                    }
                    else
                    {
                        _episodesNotLogged++;
                    }
                }

                lock (_sync)
                {
                    ShrinkToDescriptors();
                    EvictOldestPending(null);
                }

                try
                {
                    await backoff.DelayAsync(_time, cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                continue;
            }

            if (backoff.Attempts > 0)
            {
                if (_recoveryToLog)
                {
                    Log.AcceptRecovered(_logger, backoff.Attempts, Count);
                    _recoveryToLog = false;
                }

                backoff.Reset();
                TakeEmergencyDescriptors();
            }

            if (!TryAdmit(socket, out var entry))
            {
                Interlocked.Increment(ref _refused);
                socket.Dispose();
                continue;
            }

            socket.NoDelay = true;
            Track(Task.Run(async () =>
            {
                try
                {
                    await serve(socket);
                }
                finally
                {
                    Release(entry);
                }
            }, CancellationToken.None));
        }
    }

    /// <summary>The connection passed its hello: it no longer makes room for newcomers.</summary>
    public void Authenticated(Socket socket)
    {
        lock (_sync)
        {
            if (_entries.TryGetValue(socket, out var entry) && entry.Node.List is not null)
            {
                _pending.Remove(entry.Node);
            }
        }
    }

    /// <summary>Adds a task the host waits for on stop (finished ones are dropped as new ones come).</summary>
    public void Track(Task task)
    {
        lock (_sync)
        {
            _tasks.RemoveAll(t => t.IsCompleted);
            _tasks.Add(task);
        }
    }

    /// <summary>Waits, at most <paramref name="bound"/>, for every tracked task; their failures are theirs to log.</summary>
    public Task WhenAllAsync(TimeSpan bound)
    {
        Task[] tasks;
        lock (_sync)
        {
            tasks = [.. _tasks];
        }

        return Task.WhenAll(tasks).WaitAsync(bound).ContinueWith(_ => { }, TaskScheduler.Default);
    }

    private bool TryAdmit(Socket socket, out Entry entry)
    {
        var source = (socket.RemoteEndPoint as IPEndPoint)?.Address ?? IPAddress.None;
        if (source.IsIPv4MappedToIPv6)
        {
            source = source.MapToIPv4();
        }

        entry = new Entry(socket, source);
        lock (_sync)
        {
            if (++_sinceBudgetCheck >= BudgetCheckInterval)
            {
                _sinceBudgetCheck = 0;
                _capacity = Math.Max(1, Math.Min(_limits.MaxConnections, DescriptorBudget(_entries.Count) ?? _capacity));
                _lastFree = DescriptorsFree() ?? long.MaxValue;
            }

            if (_perSource.GetValueOrDefault(source) >= _limits.MaxConnectionsPerSource && !MakeRoom(source))
            {
                Log.Refused(_logger, source, "per-source limit");
                return false;
            }

            if (_entries.Count >= _capacity && !MakeRoom(null))
            {
                Log.Refused(_logger, source, "connection limit");
                return false;
            }

            _entries[socket] = entry;
            _perSource[source] = _perSource.GetValueOrDefault(source) + 1;
            _pending.AddLast(entry.Node);
            return true;
        }
    }

    private void Release(Entry entry)
    {
        lock (_sync)
        {
            if (!_entries.Remove(entry.Socket))
            {
                return;
            }

            if (entry.Node.List is not null)
            {
                _pending.Remove(entry.Node);
            }

            if (entry.Evicted)
            {
                _evicting--;
            }

            var left = _perSource[entry.Source] - 1;
            if (left == 0)
            {
                _perSource.Remove(entry.Source);
            }
            else
            {
                _perSource[entry.Source] = left;
            }
        }
    }

    /// <summary>Evicts one unauthenticated connection for a newcomer, unless too many evictions are still closing. Caller holds the lock.</summary>
    private bool MakeRoom(IPAddress? source) => _evicting < MaxEvicting && EvictOldestPending(source);

    /// <summary>Closes the oldest unauthenticated connection (from <paramref name="source"/>, or any); false when there is none. Caller holds the lock.</summary>
    private bool EvictOldestPending(IPAddress? source)
    {
        for (var node = _pending.First; node is not null; node = node.Next)
        {
            if (source is null || node.Value.Source.Equals(source))
            {
                _pending.Remove(node);
                node.Value.Evicted = true;
                _evicting++;
                Interlocked.Increment(ref _evicted);
                Log.Evicted(_logger, node.Value.Source);
                try
                {
                    // The server's reads see the end of the stream and it closes the socket (freeing the descriptor).
                    node.Value.Socket.Shutdown(SocketShutdown.Both);
                }
                catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
                {
                }

                return true;
            }
        }

        return false;
    }

    /// <summary>After an accept failed: hold no more connections than the descriptor limit leaves room for. Caller holds the lock.</summary>
    private void ShrinkToDescriptors()
    {
        var budget = DescriptorBudget(_entries.Count);
        _capacity = Math.Max(1, Math.Min(_limits.MaxConnections, budget ?? _entries.Count - 1));
    }

    /// <summary>
    /// How many connections the descriptor limit leaves room for, given that <paramref name="held"/> of the open
    /// descriptors are ours (Linux: /proc/self/limits and /proc/self/fd); null where that cannot be told.
    /// </summary>
    public static int? DescriptorBudget(int held) =>
        DescriptorsFree() is { } free ? (int)Math.Clamp(free + held - DescriptorReserve, 0, int.MaxValue) : null;

    /// <summary>Descriptors the process can still open (soft limit minus those open); null where that cannot be told (not Linux).</summary>
    public static long? DescriptorsFree()
    {
        try
        {
            if (!OperatingSystem.IsLinux())
            {
                return null;
            }

            var line = File.ReadLines("/proc/self/limits").FirstOrDefault(l => l.StartsWith("Max open files", StringComparison.Ordinal));
            var fields = line?.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields is not { Length: >= 4 } || !long.TryParse(fields[3], NumberStyles.None, CultureInfo.InvariantCulture, out var soft))
            {
                return null;
            }

            return soft - Directory.GetFileSystemEntries("/proc/self/fd").Length;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private void TakeEmergencyDescriptors()
    {
        lock (_sync)
        {
            try
            {
                while (_emergency.Count < EmergencyDescriptors && OperatingSystem.IsLinux())
                {
                    _emergency.Add(File.OpenHandle("/dev/null"));
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Still short of descriptors: the next successful accept tries again.
            }
        }
    }

    private void ReleaseEmergencyDescriptors()
    {
        lock (_sync)
        {
            foreach (var handle in _emergency)
            {
                handle.Dispose();
            }

            _emergency.Clear();
        }
    }

    private static bool IsListenerGone(SocketError error) =>
        error is SocketError.OperationAborted or SocketError.Interrupted or SocketError.NotSocket or SocketError.InvalidArgument or SocketError.Shutdown;

    private sealed class Entry
    {
        public Entry(Socket socket, IPAddress source)
        {
            Socket = socket;
            Source = source;
            Node = new LinkedListNode<Entry>(this);
        }

        public Socket Socket { get; }

        public IPAddress Source { get; }

        /// <summary>Closed to make room (its server has not let go of it yet).</summary>
        public bool Evicted { get; set; }

        /// <summary>Its place in the pending (unauthenticated) list, oldest first; detached once authenticated.</summary>
        public LinkedListNode<Entry> Node { get; }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2010, Level = LogLevel.Warning, Message = "Accepting connections fails ({Error}) with {Held} held; closing unauthenticated ones and retrying with backoff ({Episodes} more episodes since the last report)")]
        public static partial void AcceptFailing(ILogger logger, SocketError error, int held, int episodes);

        [LoggerMessage(EventId = 2011, Level = LogLevel.Information, Message = "Accepting connections again after {Attempts} failed attempts ({Held} held)")]
        public static partial void AcceptRecovered(ILogger logger, int attempts, int held);

        [LoggerMessage(EventId = 2012, Level = LogLevel.Debug, Message = "Closed an unauthenticated connection from {Source} to make room")]
        public static partial void Evicted(ILogger logger, IPAddress source);

        [LoggerMessage(EventId = 2013, Level = LogLevel.Debug, Message = "Refused a connection from {Source}: {Limit} reached by authenticated connections")]
        public static partial void Refused(ILogger logger, IPAddress source, string limit);
    }
}
