using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Skywire.Core.Channels;
using Skywire.Core.Crypto;
using Skywire.Core.Forwarding;
using Skywire.Protocol;
using Skywire.Protocol.Control;
using Skywire.Protocol.Framing;
using Skywire.Protocol.Metering;

namespace Skywire.Core.Metering;

/// <summary>Sends one metering call to the manager and returns its answer.</summary>
internal delegate Task<MeterMessage> ManagerCall(ControlOpcode opcode, MeterMessage message, CancellationToken cancellationToken);

/// <summary>
/// A node's side of metering on live routes (docs/metering.md "Live path"). As a route's source it accepts the manager's
/// terms and raises the caps with spend authorizations as data is delivered; at every position it reads the data path's
/// cumulative counters (forwarding rules, send meters), proposes a receipt for each hop it receives when one is due and
/// at route close (uploaded to the manager, which has the hop's sender countersign it), countersigns the receipts of the
/// hops it sends within the loss bound, sets the caps the forwarder gates on, and journals every message it signs or
/// takes. Nothing here runs per packet: the data path only counts and compares with the cap.
/// </summary>
internal sealed partial class MeteringAgent : IAsyncDisposable
{
    private readonly KeyPair _key;
    private readonly HashSet<PubKey> _managers;
    private readonly RuleTable _rules;
    private readonly NodeMeteringOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ManagerCall _call;
    private readonly ConcurrentDictionary<string, MeteredRoute> _routes = new(StringComparer.Ordinal);
    private readonly MeteringJournal _journal;
    private readonly CancellationTokenSource _cts = new();
    private readonly Lock _startLock = new();
    private Task? _loop;
    private TaskCompletionSource _wake = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>A node's metering agent.</summary>
    /// <param name="key">The node's key (signs receipts and authorizations).</param>
    /// <param name="managers">The managers whose terms this node takes (its manager and the alternates it fails over to).</param>
    /// <param name="rules">The data plane's rule table (counters, caps, send meters).</param>
    /// <param name="options">The node's metering settings.</param>
    /// <param name="time">Clock.</param>
    /// <param name="logger">Log.</param>
    /// <param name="call">Sends a metering call to the manager the node is connected to.</param>
    public MeteringAgent(KeyPair key, IEnumerable<PubKey> managers, RuleTable rules, NodeMeteringOptions options, TimeProvider time, ILogger logger, ManagerCall call)
    {
        (_key, _rules, _options, _time, _logger, _call) = (key, rules, options, time, logger, call);
        _managers = [.. managers];
        _journal = new MeteringJournal(options.JournalFile);
    }

    /// <summary>Metered routes this node is on (open or lingering).</summary>
    public int RouteCount => _routes.Count;

    /// <summary>Every message journaled so far (hex), for tests and the in-memory journal.</summary>
    public IReadOnlyList<string> JournalLines => _journal.Lines;

    /// <summary>Answers a manager's metering call.</summary>
    /// <exception cref="ControlException">Refused (bad message, not our position, price too high, unknown route).</exception>
    public byte[] Handle(ControlOpcode opcode, ReadOnlyMemory<byte> payload)
    {
        MeteringWarmUp.Start(); // the first metering call of this process: get the signing code optimized before data flows
        var message = JsonSerializer.Deserialize(payload.Span, ControlJsonContext.Default.MeterMessage) ?? throw new JsonException("null payload");
        var answer = opcode switch
        {
            ControlOpcode.MeterTerms => AcceptTerms(message),
            ControlOpcode.MeterRoute => Attach(message),
            ControlOpcode.MeterCountersign => Countersign(message),
            ControlOpcode.MeterCaps => RaiseCaps(message),
            _ => throw new ControlException(ControlErrorCode.BadRequest, $"opcode 0x{(byte)opcode:x2} is not a metering call"),
        };
        return JsonSerializer.SerializeToUtf8Bytes(answer, ControlJsonContext.Default.MeterMessage);
    }

    /// <summary>As the source: checks the terms against this node's limits and signs them.</summary>
    internal MeterMessage AcceptTerms(MeterMessage message)
    {
        var terms = Decode<RouteTerms>(message.Data, RouteTerms.TryDecode);
        if (!_managers.Contains(terms.Manager) || terms.Source != _key.Public)
        {
            throw new ControlException(ControlErrorCode.Forbidden, "the terms name another manager or another source");
        }

        var prices = terms.Relays.SelectMany(r => (ulong[])[r.PriceForward, r.PriceReverse]).Append(terms.DestinationPriceForward).Append(terms.DestinationPriceReverse);
        if (prices.Any(p => p > _options.MaxPricePerGiB) || terms.FeeBps > _options.MaxFeeBps)
        {
            Log.TermsRefused(_logger, Convert.ToHexStringLower(terms.RouteId), _options.MaxPricePerGiB, _options.MaxFeeBps);
            throw new ControlException(ControlErrorCode.Forbidden,
                $"the source refuses the terms: a price above its limit of {_options.MaxPricePerGiB} droplets/GiB or a fee above {_options.MaxFeeBps} bps");
        }

        try
        {
            var accepted = MeteringSigner.AcceptAsSource(terms, _key);
            return new MeterMessage { Data = Convert.ToHexStringLower(accepted.Encode()) };
        }
        catch (ArgumentException ex)
        {
            throw new ControlException(ControlErrorCode.BadRequest, ex.Message);
        }
    }

    /// <summary>This node is at a position of a metered route: build its meters, set the caps to the window.</summary>
    internal MeterMessage Attach(MeterMessage message)
    {
        var terms = Decode<RouteTerms>(message.Data, RouteTerms.TryDecode);
        var problem = _managers.Contains(terms.Manager) ? MeteringSigner.VerifyTerms(terms, terms.Manager) : "terms of a manager this node does not use";
        var position = message.Position ?? -1;
        if (problem is not null || position < 0 || position > terms.HopCount || terms.NodeAt(position) != _key.Public)
        {
            throw new ControlException(ControlErrorCode.BadRequest, $"not metering that route here: {problem ?? "not this node's position"}");
        }

        var route = new MeteredRoute(terms, position, message, this);
        if (_routes.TryAdd(route.Id, route))
        {
            // Adopted on the same labels with new terms (the route's manager changed): the old terms stop here.
            foreach (var old in _routes.Values.Where(r => r != route && route.SharesCountersWith(r)))
            {
                old.Supersede();
            }

            _journal.Append(terms.Encode());
            route.SetCaps(terms.WindowBytes, terms.WindowBytes);
            Log.RouteMetered(_logger, route.RouteId, position, terms.HopCount);
            StartLoop();
        }

        return new MeterMessage();
    }

    /// <summary>As a hop's sender: countersigns its receiver's receipt when it is within the loss bound.</summary>
    internal MeterMessage Countersign(MeterMessage message)
    {
        var proposal = Decode<HopReceipt>(message.Data, HopReceipt.TryDecode);
        if (!_routes.TryGetValue(Convert.ToHexStringLower(proposal.TermsId), out var route))
        {
            throw new ControlException(ControlErrorCode.NotFound, "no metered route with those terms here");
        }

        var signed = route.Countersign(proposal, out var reason);
        if (signed is null)
        {
            Log.CountersignRefused(_logger, route.RouteId, proposal.Hop, proposal.Direction, reason ?? "");
            throw new ControlException(ControlErrorCode.BadRequest, "not countersigned: " + reason);
        }

        _journal.Append(signed.Encode(), flush: signed.Final);
        return new MeterMessage { Data = Convert.ToHexStringLower(signed.Encode()) };
    }

    /// <summary>The source's latest authorization (the manager forwards it): raise the caps the forwarder gates on.</summary>
    internal MeterMessage RaiseCaps(MeterMessage message)
    {
        if (message.Data is null && message.DeliveredForward is { } delivered)
        {
            // As the source: the destination confirmed more forward bytes; authorize now rather than at the next tick.
            if (_routes.TryGetValue(message.TermsId ?? "", out var source) && source.Position == 0)
            {
                source.Delivered(delivered);
                Wake();
            }

            return new MeterMessage();
        }

        var auth = Decode<SpendAuthorization>(message.Data, SpendAuthorization.TryDecode);
        if (!_routes.TryGetValue(Convert.ToHexStringLower(auth.TermsId), out var route))
        {
            throw new ControlException(ControlErrorCode.NotFound, "no metered route with those terms here");
        }

        if (MeteringSigner.VerifyAuthorization(auth, route.Terms, route.TermsId) is { } problem)
        {
            throw new ControlException(ControlErrorCode.BadRequest, "authorization refused: " + problem);
        }

        if (route.TakeAuthorization(auth))
        {
            _journal.Append(auth.Encode());
        }

        return new MeterMessage();
    }

    private static T Decode<T>(string? hex, TryDecoder<T> decode)
    {
        byte[] bytes;
        try
        {
            bytes = Convert.FromHexString(hex ?? "");
        }
        catch (FormatException)
        {
            throw new ControlException(ControlErrorCode.BadRequest, "the metering message is not hex");
        }

        return decode(bytes, out var value, out var error) ? value! : throw new ControlException(ControlErrorCode.BadRequest, error ?? "does not decode");
    }

    private delegate bool TryDecoder<T>(ReadOnlySpan<byte> data, out T? value, out string? error);

    /// <summary>Runs the next tick now (a pushed figure made an authorization due).</summary>
    private void Wake() => Volatile.Read(ref _wake).TrySetResult();

    private void StartLoop()
    {
        lock (_startLock)
        {
            _loop ??= Task.Run(LoopAsync);
        }
    }

    private async Task LoopAsync()
    {
        while (!_cts.IsCancellationRequested)
        {
            var wake = Volatile.Read(ref _wake).Task;
            await Task.WhenAny(Task.Delay(_options.Tick, _time, _cts.Token), wake);
            if (_cts.IsCancellationRequested)
            {
                return;
            }

            if (wake.IsCompleted)
            {
                Volatile.Write(ref _wake, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
            }

            foreach (var route in _routes.Values)
            {
                try
                {
                    await route.TickAsync(_cts.Token);
                }
                catch (OperationCanceledException) when (_cts.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception ex) when (ex is ControlException or TimeoutException or OperationCanceledException or IOException or ProtocolViolationException)
                {
                    Log.CallFailed(_logger, route.RouteId, ex.Message);
                }

                if (route.Done)
                {
                    _routes.TryRemove(new KeyValuePair<string, MeteredRoute>(route.Id, route));
                    var (held, capped) = route.Detach();
                    Log.RouteUnmetered(_logger, route.RouteId, held, capped);
                }
            }
        }
    }

    /// <summary>
    /// This node is stopping cleanly (docs/metering.md "Clean stop"): every metered route here stops carrying and closes
    /// now, its final receipts go to the manager, and the agent keeps answering until the hops this node sends on are
    /// countersigned up to their finals, or <paramref name="timeout"/> passed. The caller keeps the control connection up
    /// meanwhile and has already told the manager which routes it ends.
    /// </summary>
    /// <returns>True when every route drained in time.</returns>
    /// <param name="timeout">The most to wait.</param>
    /// <param name="connected">False once the manager cannot be reached: nothing more can be countersigned, stop waiting.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    public async Task<bool> DrainAsync(TimeSpan timeout, Func<bool> connected, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connected);
        if (_routes.IsEmpty)
        {
            return true;
        }

        foreach (var route in _routes.Values)
        {
            route.Stop();
        }

        var started = _time.GetTimestamp();
        while (!_routes.Values.All(r => r.Drained))
        {
            if (_time.GetElapsedTime(started) >= timeout || !connected())
            {
                Log.DrainTimedOut(_logger, _routes.Values.Count(r => !r.Drained), timeout.TotalSeconds);
                return false;
            }

            Wake();
            await Task.Delay(_options.Tick / 5, _time, cancellationToken);
        }

        return true;
    }

    /// <summary>Stops the loop; closes the journal.</summary>
    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync();
        if (_loop is not null)
        {
            await _loop.ContinueWith(_ => { }, TaskScheduler.Default);
        }

        _journal.Dispose();
        _cts.Dispose();
    }

    private async Task<MeterMessage> CallAsync(ControlOpcode opcode, MeterMessage message, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.CallTimeout);
        return await _call(opcode, message, timeout.Token);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 4501, Level = LogLevel.Information, Message = "Metering route {RouteId} at position {Position} of {Hops} hops")]
        public static partial void RouteMetered(ILogger logger, string routeId, int position, int hops);

        [LoggerMessage(EventId = 4502, Level = LogLevel.Information, Message = "Metered route {RouteId} closed here (final receipts done); sends held at the cap: {Held} packets, dropped there: {Capped}")]
        public static partial void RouteUnmetered(ILogger logger, string routeId, long held, long capped);

        [LoggerMessage(EventId = 4503, Level = LogLevel.Warning, Message = "Refused the terms of route {RouteId}: a price above {MaxPrice} droplets/GiB or a fee above {MaxFee} bps")]
        public static partial void TermsRefused(ILogger logger, string routeId, ulong maxPrice, ushort maxFee);

        [LoggerMessage(EventId = 4504, Level = LogLevel.Warning, Message = "Did not countersign a receipt of route {RouteId} hop {Hop} {Direction}: {Reason}")]
        public static partial void CountersignRefused(ILogger logger, string routeId, int hop, MeteringDirection direction, string reason);

        [LoggerMessage(EventId = 4505, Level = LogLevel.Information, Message = "Metering call for route {RouteId} failed (retried with the next receipt): {Reason}")]
        public static partial void CallFailed(ILogger logger, string routeId, string reason);

        [LoggerMessage(EventId = 4507, Level = LogLevel.Warning, Message = "Stopping with {Routes} metered route(s) whose final receipts were not all countersigned within {Seconds} s; the ledger settles them by its rules (docs/metering.md \"Clean stop\")")]
        public static partial void DrainTimedOut(ILogger logger, int routes, double seconds);

        [LoggerMessage(EventId = 4506, Level = LogLevel.Debug, Message = "Route {RouteId}: caps raised to {Forward} B forward, {Reverse} B reverse")]
        public static partial void CapsRaised(ILogger logger, string routeId, ulong forward, ulong reverse);
    }
}
