using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Skywire.Core.AppApi;
using Skywire.Core.Channels;
using Skywire.Core.DataPlane;
using Skywire.Core.Messenger;
using Skywire.Core.Sessions;
using Skywire.Protocol;
using Skywire.Protocol.AppApi;
using Skywire.Protocol.Messenger;

namespace Skywire.Core.Node;

/// <summary>
/// Brokered direct links between clusters (docs/messenger.md "Direct links between clusters"): before relaying a
/// cross-cluster stream, the two nodes exchange their link addresses and session labels in sealed messages through
/// the messenger, both open the Noise IK link to the other (simultaneous open), and run an ordinary end-to-end
/// session with a stream multiplexer over that one-hop path. When that does not work within
/// <see cref="NodeOptions.DirectLinkTimeout"/>, the dial falls back to a relayed messenger stream.
/// </summary>
internal sealed partial class DirectLinks : IDisposable
{
    /// <summary>Most offers this node answers at once (each binds a session until it is established or times out).</summary>
    private const int MaxPendingDirectOffers = 16;

    private readonly Dictionary<PubKey, int> _directAdmitted = [];
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (PubKey Peer, TaskCompletionSource<DirectLinkMessage> Answer)> _directWaits = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _directGate = new(1, 1);
    private readonly NodeOptions _options;
    private readonly NodeDataPlane _dataPlane;
    private readonly MessengerPeering? _messenger;
    private readonly NodeSessions _sessions;
    private readonly Func<string, bool> _hasApp;
    private readonly ILogger _logger;
    private readonly CancellationToken _stopping;
    private int _pendingDirectOffers;
    private long _directSessionsOpened;

    /// <param name="options">Direct-link timeout, advertised address, inbound link policy, clock.</param>
    /// <param name="dataPlane">Opens and closes the direct links.</param>
    /// <param name="messenger">Carries offers and answers (null: no direct links).</param>
    /// <param name="sessions">Where the direct sessions are bound.</param>
    /// <param name="hasApp">Whether an app of this name accepts streams here.</param>
    /// <param name="loggerFactory">Logging.</param>
    /// <param name="stopping">Cancelled when the node stops.</param>
    public DirectLinks(NodeOptions options, NodeDataPlane dataPlane, MessengerPeering? messenger, NodeSessions sessions, Func<string, bool> hasApp, ILoggerFactory loggerFactory, CancellationToken stopping)
    {
        _options = options;
        _dataPlane = dataPlane;
        _messenger = messenger;
        _sessions = sessions;
        _hasApp = hasApp;
        _logger = loggerFactory.CreateLogger<NodeHost>();
        _stopping = stopping;
    }

    /// <summary>Direct sessions to other clusters' nodes that were established (both roles) since the start.</summary>
    public long SessionsEstablished => Interlocked.Read(ref _directSessionsOpened);

    /// <summary>
    /// The data plane's inbound link policy: a key this node is brokering a direct link with (or has a live direct
    /// session with) is admitted; every other key is decided by <see cref="Skywire.Core.DataPlane.DataPlaneOptions.AcceptInboundLink"/>
    /// of the configuration (null: any authenticated key, as mesh links need).
    /// </summary>
    public bool AdmitInboundLink(PubKey peer)
    {
        lock (_directAdmitted)
        {
            if (_directAdmitted.ContainsKey(peer))
            {
                return true;
            }
        }

        return _options.DataPlane.AcceptInboundLink?.Invoke(peer) ?? true;
    }

    public bool IsDirectPeer(PubKey peer)
    {
        lock (_directAdmitted)
        {
            return _directAdmitted.ContainsKey(peer);
        }
    }

    private void AdmitDirect(PubKey peer)
    {
        lock (_directAdmitted)
        {
            _directAdmitted[peer] = _directAdmitted.GetValueOrDefault(peer) + 1;
        }
    }

    /// <summary>Drops one admission of <paramref name="peer"/>; the last one closes the direct link.</summary>
    public void ReleaseDirect(PubKey peer)
    {
        bool last;
        lock (_directAdmitted)
        {
            var count = _directAdmitted.GetValueOrDefault(peer) - 1;
            last = count <= 0;
            if (last)
            {
                _directAdmitted.Remove(peer);
            }
            else
            {
                _directAdmitted[peer] = count;
            }
        }

        if (last && !_stopping.IsCancellationRequested)
        {
            _dataPlane.CloseLink(peer);
        }
    }

    /// <summary>The link address offered to the other node: the advertised one, else the bound one (a wildcard bind takes the address that reaches the messenger).</summary>
    private IPEndPoint? DirectLinkAddress()
    {
        var address = _options.AdvertisedLinkAddress ?? _dataPlane.LocalEndPoint;
        if (!address.Address.Equals(IPAddress.Any) && !address.Address.Equals(IPAddress.IPv6Any))
        {
            return address;
        }

        if (_messenger?.LocalEndPoint is not { } local)
        {
            return null;
        }

        var ip = local.Address.IsIPv4MappedToIPv6 ? local.Address.MapToIPv4() : local.Address;
        return new IPEndPoint(ip, address.Port);
    }

    /// <summary>
    /// Tries to get an end-to-end session to <paramref name="peer"/> (another cluster's node) over a direct link
    /// brokered through the messenger. Null when that did not work in time (the caller relays).
    /// </summary>
    /// <exception cref="AppApiException">Refused: the peer has no app <paramref name="app"/>.</exception>
    public async Task<MeshSession?> TryDirectSessionAsync(PubKey peer, string app, CancellationToken cancellationToken)
    {
        if (_options.DirectLinkTimeout <= TimeSpan.Zero || _messenger is not { IsConnected: true } messenger || DirectLinkAddress() is not { } mine)
        {
            return null;
        }

        await _directGate.WaitAsync(cancellationToken);
        try
        {
            // A concurrent dial may have made one while we waited.
            if (_sessions.FindUsable(peer, s => s.IsDirect && s.Secure.State == SecureSessionState.Established) is { } live)
            {
                return live;
            }

            return await AttemptDirectAsync(messenger, peer, app, mine, cancellationToken);
        }
        finally
        {
            _directGate.Release();
        }
    }

    private async Task<MeshSession?> AttemptDirectAsync(MessengerPeering messenger, PubKey peer, string app, IPEndPoint mine, CancellationToken cancellationToken)
    {
        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var sessionId = RandomSessionId();
        var inRoute = RandomRoute();
        var answer = new TaskCompletionSource<DirectLinkMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
        _directWaits[id] = (peer, answer);
        AdmitDirect(peer);
        MeshSession? session = null;
        var owned = true;
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bound.CancelAfter(_options.DirectLinkTimeout);
        try
        {
            var offer = new DirectLinkMessage { Type = DirectLinkMessage.TypeTag, Kind = DirectLinkKind.Offer, Id = id, Session = sessionId, Route = inRoute, Link = NodeControl.FormatEndPoint(mine), App = app };
            await messenger.SendAsync(peer, offer.Serialize(), bound.Token);
            var reply = await answer.Task.WaitAsync(bound.Token);
            if (reply.Kind == DirectLinkKind.Refuse)
            {
                Log.DirectRefused(_logger, peer, reply.Reason ?? "?");
                if (reply.Reason == DirectLinkRefusal.NoApp)
                {
                    throw new AppApiException(AppApiErrorCode.Refused, $"node {peer.ToShortString(12)} has no app '{app}' accepting streams");
                }

                return null;
            }

            if (reply.Kind != DirectLinkKind.Answer || reply.Route == 0 || !IPEndPoint.TryParse(reply.Link ?? "", out var remote))
            {
                Log.DirectFailed(_logger, peer, "malformed answer");
                return null;
            }

            // Both ends open the link to the other at about the same time (the answerer does as it answers): through
            // address-filtering NATs, each side's outgoing handshake opens the way for the other's.
            await _dataPlane.OpenLinkAsync(peer, remote, bound.Token);
            session = _sessions.Bind(new SessionRoute(sessionId, peer, true, peer, reply.Route, peer, inRoute), direct: true);
            owned = false; // the session holds the admission now and releases it when it ends
            await session.Secure.Established.WaitAsync(bound.Token);
            Interlocked.Increment(ref _directSessionsOpened);
            Log.DirectUp(_logger, peer, remote, true);
            return session;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            Log.DirectTimedOut(_logger, peer, _options.DirectLinkTimeout);
        }
        catch (Exception ex) when (ex is MessengerException or TimeoutException or SessionClosedException or ArgumentException or ControlException)
        {
            Log.DirectFailed(_logger, peer, ex.Message);
        }
        finally
        {
            _directWaits.TryRemove(id, out _);
            if (owned)
            {
                ReleaseDirect(peer);
            }
        }

        if (session is not null)
        {
            await session.DisposeAsync();
        }

        return null;
    }

    /// <summary>A sealed message arrived through the messenger (from a key the messenger proved).</summary>
    public void OnMessengerMessage(MessengerMessage message)
    {
        var direct = DirectLinkMessage.TryParse(message.Data.Span);
        if (direct is null)
        {
            Log.MessageIgnored(_logger, message.From);
            return;
        }

        switch (direct.Kind)
        {
            case DirectLinkKind.Offer when !message.WasQueued:
                _ = AnswerOfferAsync(message.From, direct).ContinueWith(
                    t => Log.AnswerFailed(_logger, message.From, t.Exception!.GetBaseException()),
                    CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
                break;
            case DirectLinkKind.Answer or DirectLinkKind.Refuse:
                // Only the key we sent that offer to can answer it.
                if (_directWaits.TryGetValue(direct.Id ?? "", out var wait) && wait.Peer == message.From)
                {
                    wait.Answer.TrySetResult(direct);
                }

                break;
            default:
                Log.MessageIgnored(_logger, message.From);
                break;
        }
    }

    private async Task AnswerOfferAsync(PubKey peer, DirectLinkMessage offer)
    {
        var messenger = _messenger!;
        var refusal = CheckOffer(offer, out var remote);
        var mine = DirectLinkAddress();
        if (refusal is null && mine is null)
        {
            refusal = DirectLinkRefusal.NoAddress;
        }

        if (refusal is null && Interlocked.Increment(ref _pendingDirectOffers) > MaxPendingDirectOffers)
        {
            Interlocked.Decrement(ref _pendingDirectOffers);
            refusal = DirectLinkRefusal.Busy;
        }

        if (refusal is not null)
        {
            Log.DirectOfferRefused(_logger, peer, refusal);
            await SendDirectAsync(messenger, peer, new DirectLinkMessage { Type = DirectLinkMessage.TypeTag, Kind = DirectLinkKind.Refuse, Id = offer.Id, Reason = refusal });
            return;
        }

        try
        {
            var inRoute = RandomRoute();
            AdmitDirect(peer);
            MeshSession session;
            try
            {
                session = _sessions.Bind(new SessionRoute(offer.Session, peer, false, peer, offer.Route, peer, inRoute), direct: true);
            }
            catch (Exception ex) when (ex is ArgumentException or ControlException)
            {
                ReleaseDirect(peer);
                Log.DirectOfferRefused(_logger, peer, ex.Message);
                await SendDirectAsync(messenger, peer, new DirectLinkMessage { Type = DirectLinkMessage.TypeTag, Kind = DirectLinkKind.Refuse, Id = offer.Id, Reason = DirectLinkRefusal.BadOffer });
                return;
            }

            // The session now holds the admission; it closes itself when its handshake times out.
            await SendDirectAsync(messenger, peer, new DirectLinkMessage { Type = DirectLinkMessage.TypeTag, Kind = DirectLinkKind.Answer, Id = offer.Id, Route = inRoute, Link = NodeControl.FormatEndPoint(mine!) });
            _ = PunchAsync(peer, remote!);
            try
            {
                await session.Secure.Established;
                Interlocked.Increment(ref _directSessionsOpened);
                Log.DirectUp(_logger, peer, remote!, false);
            }
            catch (SessionClosedException ex)
            {
                Log.DirectFailed(_logger, peer, ex.Message);
            }
        }
        finally
        {
            Interlocked.Decrement(ref _pendingDirectOffers);
        }
    }

    /// <summary>
    /// The answerer's half of the simultaneous open: unless the dialler's handshake got through meanwhile, open the
    /// link toward the dialler too (its packets open our side of an address-filtering NAT for the dialler's retries,
    /// and reach the dialler when the address we offered does not work). Waiting a moment first keeps the two
    /// handshakes from crossing when the direct path simply works.
    /// </summary>
    private async Task PunchAsync(PubKey peer, IPEndPoint remote)
    {
        try
        {
            var delay = TimeSpan.FromTicks(Math.Min(_options.DirectLinkTimeout.Ticks / 4, TimeSpan.FromMilliseconds(500).Ticks));
            await Task.Delay(delay, _options.TimeProvider, _stopping);
            if (_dataPlane.GetLink(peer)?.State != Links.LinkState.Up && IsDirectPeer(peer))
            {
                await _dataPlane.OpenLinkAsync(peer, remote, _stopping);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or TimeoutException or ArgumentException or ObjectDisposedException or InvalidOperationException)
        {
            // The dialler gives up on its own clock; nothing to clean here.
        }
    }

    private string? CheckOffer(DirectLinkMessage offer, out IPEndPoint? remote)
    {
        remote = null;
        if (_options.DirectLinkTimeout <= TimeSpan.Zero)
        {
            return DirectLinkRefusal.Disabled;
        }

        if (offer.Id is not { Length: > 0 and <= DirectLinkMessage.MaxIdLength } || offer.Session == 0 || offer.Route == 0 || !IPEndPoint.TryParse(offer.Link ?? "", out remote) || remote.Port == 0)
        {
            return DirectLinkRefusal.BadOffer;
        }

        if (_dataPlane.LocalEndPoint.AddressFamily == AddressFamily.InterNetwork && remote.AddressFamily != AddressFamily.InterNetwork && !remote.Address.IsIPv4MappedToIPv6)
        {
            return DirectLinkRefusal.BadOffer;
        }

        if (offer.App is null || !_hasApp(offer.App))
        {
            return DirectLinkRefusal.NoApp;
        }

        return _sessions.Contains(offer.Session) ? DirectLinkRefusal.BadOffer : null;
    }

    private async Task SendDirectAsync(MessengerPeering messenger, PubKey peer, DirectLinkMessage message)
    {
        try
        {
            await messenger.SendAsync(peer, message.Serialize(), _stopping);
        }
        catch (Exception ex) when (ex is MessengerException or OperationCanceledException or ObjectDisposedException)
        {
            Log.DirectFailed(_logger, peer, "cannot answer: " + ex.Message);
        }
    }

    private static ulong RandomSessionId()
    {
        // The top bit set keeps these apart from the manager's small sequential ids.
        Span<byte> bytes = stackalloc byte[8];
        RandomNumberGenerator.Fill(bytes);
        return BinaryPrimitives.ReadUInt64BigEndian(bytes) | (1UL << 63);
    }

    private static uint RandomRoute()
    {
        Span<byte> bytes = stackalloc byte[4];
        RandomNumberGenerator.Fill(bytes);
        return BinaryPrimitives.ReadUInt32BigEndian(bytes) | (1u << 31);
    }

    /// <inheritdoc />
    public void Dispose() => _directGate.Dispose();

    private static partial class Log
    {
        [LoggerMessage(EventId = 7010, Level = LogLevel.Information, Message = "Direct link to {Peer} at {Address} carries our session (we dialled: {Dialler})")]
        public static partial void DirectUp(ILogger logger, PubKey peer, IPEndPoint address, bool dialler);

        [LoggerMessage(EventId = 7011, Level = LogLevel.Information, Message = "No direct link to {Peer}: {Reason}")]
        public static partial void DirectFailed(ILogger logger, PubKey peer, string reason);

        [LoggerMessage(EventId = 7015, Level = LogLevel.Information, Message = "No direct link to {Peer} within {Timeout}; relaying")]
        public static partial void DirectTimedOut(ILogger logger, PubKey peer, TimeSpan timeout);

        [LoggerMessage(EventId = 7016, Level = LogLevel.Warning, Message = "Answering a direct link offer from {Peer} failed")]
        public static partial void AnswerFailed(ILogger logger, PubKey peer, Exception exception);

        [LoggerMessage(EventId = 7012, Level = LogLevel.Information, Message = "{Peer} refused a direct link: {Reason}")]
        public static partial void DirectRefused(ILogger logger, PubKey peer, string reason);

        [LoggerMessage(EventId = 7013, Level = LogLevel.Information, Message = "Refused a direct link offer from {Peer}: {Reason}")]
        public static partial void DirectOfferRefused(ILogger logger, PubKey peer, string reason);

        [LoggerMessage(EventId = 7014, Level = LogLevel.Debug, Message = "Ignored a messenger message from {Peer}: not a direct-link message")]
        public static partial void MessageIgnored(ILogger logger, PubKey peer);
    }
}

