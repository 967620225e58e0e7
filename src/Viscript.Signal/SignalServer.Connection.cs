using System.Collections.Concurrent;
using System.Text.Json;
using Viscript.Signal.Internal;
using Viscript.Signal.Protocol;

namespace Viscript.Signal;

public sealed partial class SignalServer
{
    /// <summary>
    /// Life cycle of a server connection; every change goes through <see cref="ServerConnection.TransitionTo"/>:
    /// <code>
    ///             REG accepted                 (a later REG under another id keeps it Registered)
    ///   Pending ───────────────► Registered
    ///      │  frames ≤ 4 KiB,        │  frames ≤ MaxFrameSize
    ///      │  REG deadline armed     │
    ///      └──────────┬──────────────┘
    ///                 ▼ peer closed, protocol violation, idle, no REG in time, refused, server stopped
    ///              Closed
    /// </code>
    /// </summary>
    private enum ConnectionState
    {
        Pending = 0,
        Registered = 10,
        Closed = 20,
    }

    /// <summary>Server-side state of one client connection: registration and outstanding calls.</summary>
    private sealed class ServerConnection(SignalServer server, SignalConnection connection)
    {
        private const int OpCount = 3; // TOP, PING, SHUTDOWN

        private readonly Lock _sync = new();

        // Original clients: replies carry no request id, so calls are serialised per op (one slot each) and a reply
        // owed to a call that gave up is dropped when it arrives (TCP keeps replies in request order).
        private readonly SemaphoreSlim[] _opLocks = [new(1, 1), new(1, 1), new(1, 1)];
        private readonly Waiter?[] _slots = new Waiter?[OpCount];
        private readonly int[] _owed = new int[OpCount];

        // Extended clients: replies echo the request id, calls run concurrently.
        private readonly ConcurrentDictionary<ulong, Waiter> _byRid = new();
        private long _nextRid;
        private long _lastFrame; // TimeProvider timestamp of the last frame that proves the client alive now
        private uint _ackFloor; // ACKs of frames before this seq were sent before the current probe: no proof of life
        private bool _failed;
        private volatile ConnectionState _state = ConnectionState.Pending;
        private CancellationTokenSource? _registrationDeadline;

        public SignalConnection Connection { get; } = connection;

        /// <summary>Largest NORMAL body this connection may send now: small until it has registered.</summary>
        public int MaxBodySize => _state == ConnectionState.Registered
            ? server.Options.MaxFrameSize
            : Math.Min(SignalServerOptions.MaxRegistrationFrameSize, server.Options.MaxFrameSize);

        /// <summary>Starts the REG deadline: a connection still pending when it runs out is closed.</summary>
        public void ArmRegistrationDeadline()
        {
            var timeout = server.Options.RegistrationTimeout;
            if (timeout <= TimeSpan.Zero || timeout == Timeout.InfiniteTimeSpan)
            {
                return;
            }

            var deadline = new CancellationTokenSource(timeout, server.Options.TimeProvider);
            deadline.Token.Register(() =>
            {
                lock (_sync)
                {
                    if (_state != ConnectionState.Pending)
                    {
                        return;
                    }
                }

                Connection.Abort($"no registration within {timeout.TotalSeconds:0.###} s", ConnectionCloseKind.Deadline);
            });
            lock (_sync)
            {
                _registrationDeadline = deadline;
            }
        }

        /// <summary>A REG was accepted: the deadline is off and full-size frames are allowed.</summary>
        public void MarkRegistered()
        {
            CancellationTokenSource? deadline;
            lock (_sync)
            {
                if (_state != ConnectionState.Pending)
                {
                    return; // registered before (a REG under another id), or already closed
                }

                TransitionTo(ConnectionState.Registered);
                deadline = _registrationDeadline;
                _registrationDeadline = null;
            }

            deadline?.Dispose();
        }

        /// <summary>The read loop ended: outstanding calls fail, the state is final.</summary>
        public void Close()
        {
            CancellationTokenSource? deadline;
            lock (_sync)
            {
                if (_state != ConnectionState.Closed)
                {
                    TransitionTo(ConnectionState.Closed);
                }

                deadline = _registrationDeadline;
                _registrationDeadline = null;
            }

            deadline?.Dispose();
            FailPending();
        }

        /// <summary>The one place the state changes; caller holds <c>_sync</c>. Enforces the table drawn on <see cref="ConnectionState"/>.</summary>
        private void TransitionTo(ConnectionState to)
        {
            var allowed = (_state, to) switch
            {
                (ConnectionState.Pending, ConnectionState.Registered or ConnectionState.Closed) => true,
                (ConnectionState.Registered, ConnectionState.Closed) => true,
                _ => false,
            };
            if (!allowed)
            {
                throw new InvalidOperationException($"signal connection {Connection.RemoteEndPoint}: {_state} -> {to} is not allowed");
            }

            _state = to;
        }

        public SignalClientInfo? Info { get; set; }

        public int Extension { get; set; }

        public async ValueTask OnFrameAsync(SignalFrame frame)
        {
            if (frame.Type != SignalFrameType.Ack || unchecked((int)(frame.Seq - Volatile.Read(ref _ackFloor))) >= 0)
            {
                // A late ACK of an older frame may have been written before the probe was sent, so it proves nothing.
                Volatile.Write(ref _lastFrame, server.Options.TimeProvider.GetTimestamp());
            }

            switch (frame.Type)
            {
                case SignalFrameType.Normal:
                    // Reference §4.7: every NORMAL frame is acked first, even empty or malformed ones.
                    await SendQuietlyAsync(Connection.SendAckAsync(frame.Seq));
                    if (!frame.HasOp)
                    {
                        return; // an empty NORMAL frame is acked and ignored, as the original does
                    }

                    var op = frame.Op;
                    if (op == SignalOps.Reg)
                    {
                        await server.RegisterAsync(this, SignalConnection.TryParseJson(frame.Json));
                    }
                    else if (op is >= SignalOps.ReplyFlag and < SignalOps.ReplyFlag + OpCount)
                    {
                        OnReply((byte)(op & ~SignalOps.ReplyFlag), frame);
                    }
                    else
                    {
                        // Our decision (docs/signal.md): a client op we do not know is garbage, not a future feature;
                        // new ops come only after negotiation through Ext.
                        throw new SignalProtocolException($"unknown op 0x{op:x2} from client");
                    }

                    break;

                case SignalFrameType.Ping:
                    await SendQuietlyAsync(Connection.SendPongAsync(frame.Timestamp));
                    break;

                case SignalFrameType.Pong:
                    throw new SignalProtocolException("PONG sent to the server (only clients ping)");

                default:
                    break; // ACK: accepted, never required
            }
        }

        public async Task<JsonElement> CallAsync(byte op, TimeSpan timeout, CancellationToken cancellationToken)
        {
            using var deadline = new CancellationTokenSource(timeout, server.Options.TimeProvider);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
            var outcome = "ok";
            try
            {
                return Extension > 0
                    ? await CallExtendedAsync(op, linked.Token)
                    : await CallOriginalAsync(op, linked.Token);
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                outcome = "timeout";
                throw new SignalException(SignalErrorKind.Timeout,
                    $"client {Info?.Id} did not answer {OpName(op)} within {timeout.TotalSeconds:0.###} s");
            }
            catch (OperationCanceledException)
            {
                outcome = "cancelled";
                throw;
            }
            catch (SignalException ex)
            {
                outcome = ex.Kind == SignalErrorKind.Disconnected ? "disconnected" : "bad_reply";
                throw;
            }
            finally
            {
                SignalMetrics.Calls.Add(1, new("op", OpName(op)), new("outcome", outcome));
            }
        }

        /// <summary>
        /// Whether the client answers a PING within <paramref name="timeout"/> (hijack check). Any frame received
        /// meanwhile also proves it alive (its PING slot may be busy with a slow call of the host), except an ACK of a
        /// frame sent before the probe: the client may have written it before it went silent.
        /// </summary>
        public async Task<bool> ProbeAsync(TimeSpan timeout)
        {
            Volatile.Write(ref _ackFloor, unchecked(Connection.LastSentSeq + 1));
            var started = server.Options.TimeProvider.GetTimestamp();
            try
            {
                await CallAsync(SignalOps.Ping, timeout, CancellationToken.None);
                return true;
            }
            catch (SignalException ex)
            {
                // A bad reply still proves someone is there.
                return ex.Kind == SignalErrorKind.BadReply ||
                    (ex.Kind == SignalErrorKind.Timeout && Volatile.Read(ref _lastFrame) > started && !Connection.IsClosed);
            }
        }

        private void FailPending()
        {
            Waiter?[] slots;
            lock (_sync)
            {
                _failed = true;
                slots = [.. _slots];
                Array.Clear(_slots);
            }

            var error = new SignalException(SignalErrorKind.Disconnected,
                $"client {Info?.Id} disconnected ({Connection.CloseReason ?? "closed"})");
            foreach (var waiter in slots)
            {
                waiter?.Completion.TrySetException(error);
            }

            foreach (var waiter in _byRid.Values)
            {
                waiter.Completion.TrySetException(error);
            }

            _byRid.Clear();
        }

        private async Task<JsonElement> CallOriginalAsync(byte op, CancellationToken cancellationToken)
        {
            var gate = _opLocks[op];
            await gate.WaitAsync(cancellationToken);
            var waiter = new Waiter(op);
            var sent = false;
            try
            {
                lock (_sync)
                {
                    ThrowIfFailed();
                    _slots[op] = waiter;
                }

                await SendRequestAsync(op, SignalJson.Null, cancellationToken);
                sent = true;
                return await waiter.Completion.Task.WaitAsync(cancellationToken);
            }
            finally
            {
                lock (_sync)
                {
                    if (_slots[op] == waiter)
                    {
                        _slots[op] = null;
                        if (sent)
                        {
                            _owed[op]++;
                        }
                    }
                }

                gate.Release();
            }
        }

        private async Task<JsonElement> CallExtendedAsync(byte op, CancellationToken cancellationToken)
        {
            var rid = (ulong)Interlocked.Increment(ref _nextRid);
            var waiter = new Waiter(op);
            lock (_sync)
            {
                ThrowIfFailed();
                _byRid[rid] = waiter;
            }

            try
            {
                var body = SignalJson.Write(w =>
                {
                    w.WriteStartObject();
                    w.WriteNumber("Rid", rid);
                    w.WriteEndObject();
                });
                await SendRequestAsync(op, body, cancellationToken);
                return await waiter.Completion.Task.WaitAsync(cancellationToken);
            }
            finally
            {
                _byRid.TryRemove(rid, out _);
            }
        }

        private async Task SendRequestAsync(byte op, byte[] body, CancellationToken cancellationToken)
        {
            try
            {
                await Connection.SendNormalAsync(op, body, cancellationToken);
            }
            catch (IOException ex)
            {
                throw new SignalException(SignalErrorKind.Disconnected, $"client {Info?.Id} disconnected", ex);
            }
        }

        private void OnReply(byte op, SignalFrame frame)
        {
            var json = SignalConnection.TryParseJson(frame.Json);
            if (Extension > 0)
            {
                if (json is { } element && SignalJson.GetRid(element) is { } rid &&
                    _byRid.TryGetValue(rid, out var byRid) && byRid.Op == op && _byRid.TryRemove(rid, out _))
                {
                    byRid.Completion.TrySetResult(element.Clone());
                    return;
                }

                SignalMetrics.RepliesIgnored.Add(1);
                server.Report(SignalDiagnosticKind.IgnoredReply, $"{Describe(this)}: ignored unsolicited or late {OpName(op)} reply", this);
                return;
            }

            Waiter? waiter = null;
            var late = false;
            lock (_sync)
            {
                if (_owed[op] > 0)
                {
                    _owed[op]--;
                    late = true;
                }
                else
                {
                    waiter = _slots[op];
                    _slots[op] = null;
                }
            }

            if (waiter is null)
            {
                SignalMetrics.RepliesIgnored.Add(1);
                server.Report(SignalDiagnosticKind.IgnoredReply, $"{Describe(this)}: ignored {(late ? "late" : "unsolicited")} {OpName(op)} reply", this);
                return;
            }

            if (json is { } value)
            {
                waiter.Completion.TrySetResult(value);
            }
            else
            {
                waiter.Completion.TrySetException(new SignalException(SignalErrorKind.BadReply,
                    $"client {Info?.Id} sent a {OpName(op)} reply that is not valid JSON"));
            }
        }

        private void ThrowIfFailed()
        {
            if (_failed || Connection.IsClosed)
            {
                throw new SignalException(SignalErrorKind.Disconnected, $"client {Info?.Id} disconnected");
            }
        }

        private static async ValueTask SendQuietlyAsync(Task send)
        {
            try
            {
                await send;
            }
            catch (IOException)
            {
                // The read loop notices the closed connection next.
            }
        }

        private static string OpName(byte op) => op switch
        {
            SignalOps.Top => "TOP",
            SignalOps.Ping => "PING",
            SignalOps.Shutdown => "SHUTDOWN",
            _ => $"0x{op:x2}",
        };
    }

    private sealed class Waiter(byte op)
    {
        public byte Op { get; } = op;

        public TaskCompletionSource<JsonElement> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
