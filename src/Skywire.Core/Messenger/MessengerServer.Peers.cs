using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Skywire.Core.Channels;
using Skywire.Core.Crypto.Noise;
using Skywire.Core.Messenger.Internal;
using Skywire.Protocol;
using Skywire.Protocol.Framing;
using Skywire.Protocol.Messenger;
using Microsoft.Extensions.Logging;
using ProtocolViolationException = Skywire.Protocol.Framing.ProtocolViolationException;

namespace Skywire.Core.Messenger;

public sealed partial class MessengerServer
{
    /// <summary>Bytes queued toward one other messenger before its link counts as not reading (it carries many keys' messages).</summary>
    private long PeerQueueLimit => 16 * Options.OutboundQueueLimit;

    /// <summary>A link this messenger opened to another messenger of the store (null while it is being opened).</summary>
    private sealed class PeerLink
    {
        public MessengerLink? Link { get; set; }
        public bool Connecting { get; set; }
        public long RetryAfterTick { get; set; }
    }

    private readonly Lock _peerLock = new();
    private readonly Dictionary<PubKey, PeerLink> _peers = [];

    /// <summary>The shared presence view (null without a store).</summary>
    public MessengerPresence? Presence { get; }

    /// <summary>Whether <paramref name="key"/> is another messenger of this store (it may send the Peer* frames).</summary>
    private bool IsPeer(PubKey key) => Presence?.TryGetServer(key, out _) == true;

    /// <summary>
    /// Waits until this messenger's view of the store lists <paramref name="key"/> as a messenger (a peer that just
    /// joined is seen by the one it links to a moment later: the watches of two messengers do not advance together).
    /// False when it is not listed by the time <paramref name="cancellationToken"/> fires, or without a store.
    /// </summary>
    private async Task<bool> WaitUntilPeerAsync(PubKey key, CancellationToken cancellationToken)
    {
        if (Presence is not { } presence)
        {
            return false;
        }

        var listed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnApplied()
        {
            if (IsPeer(key))
            {
                listed.TrySetResult();
            }
        }

        presence.Applied += OnApplied;
        try
        {
            if (!IsPeer(key))
            {
                await listed.Task.WaitAsync(cancellationToken);
            }

            return true;
        }
        catch (OperationCanceledException)
        {
            return IsPeer(key);
        }
        finally
        {
            presence.Applied -= OnApplied;
        }
    }

    /// <summary>Whether <paramref name="key"/> is connected here or to another messenger of the store.</summary>
    public bool IsOnlineAnywhere(PubKey key) => IsOnline(key) || Presence?.ServersOf(key).Length > 0;

    /// <summary>Links to other messengers that are up now.</summary>
    public int PeerLinks
    {
        get
        {
            lock (_peerLock)
            {
                return _peers.Values.Count(p => p.Link is not null);
            }
        }
    }

    private void StartPresence(IPEndPoint advertised)
    {
        if (Presence is not { } presence)
        {
            return;
        }

        presence.Directory = Directory;
        presence.UserArrived += OnUserArrived;
        presence.ServerGone += OnServerGone;
        presence.Start(advertised);
    }

    /// <summary>
    /// Sends a message to every other messenger <paramref name="to"/> is connected to; false when none took it now.
    /// <paramref name="waiting"/> is set when a messenger holds the key but no link to it is up yet (one is being opened).
    /// </summary>
    private bool ForwardToPeers(PubKey from, PubKey to, uint messageId, ReadOnlySpan<byte> envelope, out bool waiting)
    {
        waiting = false;
        if (Presence is not { } presence)
        {
            return false;
        }

        var forwarded = false;
        foreach (var server in presence.ServersOf(to))
        {
            if (PeerLinkOf(server) is not { } link)
            {
                waiting = true;
                continue;
            }

            forwarded |= link.TryEnqueueBounded((byte)MessengerOpcode.PeerSend, messageId, MessengerFrames.PeerSendPrefix(from, to), envelope, PeerQueueLimit);
        }

        return forwarded;
    }

    /// <summary>The link to <paramref name="server"/> when it is up; otherwise starts opening one (at most once a second) and returns null.</summary>
    private MessengerLink? PeerLinkOf(PubKey server)
    {
        lock (_peerLock)
        {
            if (_peers.TryGetValue(server, out var peer))
            {
                if (peer.Link is { } link)
                {
                    return link;
                }

                if (peer.Connecting || Environment.TickCount64 < peer.RetryAfterTick)
                {
                    return null;
                }
            }
            else
            {
                _peers[server] = peer = new PeerLink();
            }

            peer.Connecting = true;
        }

        _ = Task.Run(() => ConnectPeerAsync(server));
        return null;
    }

    private async Task ConnectPeerAsync(PubKey server)
    {
        MessengerLink link;
        try
        {
            if (Presence is null || !Presence.TryGetServer(server, out var endPoint))
            {
                throw new MessengerException(MessengerErrorCode.NotFound, "it left the store");
            }

            link = await OpenPeerLinkAsync(server, endPoint);
        }
        catch (Exception ex) when (ex is MessengerException or SocketException or IOException or NoiseException or ProtocolViolationException or OperationCanceledException or JsonException or ObjectDisposedException or EndOfStreamException)
        {
            Log.PeerUnreachable(_logger, server, ex.Message);
            lock (_peerLock)
            {
                if (_peers.TryGetValue(server, out var failed))
                {
                    failed.Connecting = false;
                    failed.RetryAfterTick = Environment.TickCount64 + 1000;
                }
            }

            return;
        }

        bool kept;
        lock (_peerLock)
        {
            kept = _peers.TryGetValue(server, out var peer) && _disposed == 0;
            if (kept)
            {
                peer!.Link = link;
                peer.Connecting = false;
            }
        }

        if (!kept)
        {
            await link.DisposeAsync();
            return;
        }

        Log.PeerConnected(_logger, server);
        _ = link.Closed.ContinueWith(_ => OnPeerClosed(server, link), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        foreach (var user in Presence!.UsersAt(server))
        {
            FlushToPeer(user, link);
        }
    }

    /// <summary>TCP, Noise XK pinning the key the store lists for <paramref name="server"/>, and a hello proving ours.</summary>
    private async Task<MessengerLink> OpenPeerLinkAsync(PubKey server, IPEndPoint endPoint)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_cts.Token);
        deadline.CancelAfter(Options.HandshakeTimeout);
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        NoiseStream secure;
        try
        {
            await socket.ConnectAsync(endPoint, deadline.Token);
            secure = await NoiseStream.ConnectAsync(new NetworkStream(socket, ownsSocket: true), _key, server, MessengerProtocol.Prologue, deadline.Token);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var link = new MessengerLink(secure, "messenger " + server.ToShortString(12), _loggerFactory.CreateLogger<MessengerLink>());
        link.Start((op, id, payload) => HandlePeerFrame(link, op, id, payload));
        var hello = new MessengerHello
        {
            Version = MessengerProtocol.Version,
            Signature = Convert.ToHexStringLower(_key.Sign(secure.HelloSigningInput(MessengerProtocol.HelloSignatureContext))),
            Agent = "skywire-messenger (peer)",
            Peer = true,
        };
        try
        {
            await link.RequestAsync((byte)MessengerOpcode.Hello, JsonSerializer.SerializeToUtf8Bytes(hello, MessengerJsonContext.Default.MessengerHello), Options.HandshakeTimeout, deadline.Token);
        }
        catch
        {
            await link.DisposeAsync();
            throw;
        }

        return link;
    }

    /// <summary>Frames the other messenger sends on a link this one opened: pings and drop notices; messages it might deliver to our key are ignored.</summary>
    private void HandlePeerFrame(MessengerLink link, byte opcode, uint requestId, ReadOnlySpan<byte> payload)
    {
        switch ((MessengerOpcode)opcode)
        {
            case MessengerOpcode.Ping:
                link.Enqueue((byte)(opcode | FrameCodec.ResponseBit), requestId, []);
                break;
            case MessengerOpcode.PeerDropped:
                OnPeerDropped(payload);
                break;
            case MessengerOpcode.Deliver:
            case MessengerOpcode.Dropped:
                break;
            default:
                throw new ProtocolViolationException($"unexpected opcode 0x{opcode:x2} from another messenger");
        }
    }

    /// <summary>A PeerSend from another messenger's connection: delivered or queued here, never forwarded again (no loops).</summary>
    private void OnPeerSend(ServerConnection connection, uint messageId, ReadOnlySpan<byte> payload)
    {
        if (!IsPeer(connection.Key))
        {
            throw new ProtocolViolationException("PeerSend from a key that is not a messenger of this store");
        }

        MessengerFrames.ReadPeerSend(payload, out var from, out var to, out var envelope);
        var reason = envelope.Length > MessengerProtocol.MaxEnvelopeSize ? DropReason.TooLarge : Route(from, to, messageId, envelope, fromPeer: true);
        if (reason is { } r)
        {
            var notice = new DropNotice { To = to.ToString(), MessageId = messageId, Reason = r, Detail = ServerConnection.Describe(r) };
            Log.Dropped(_logger, from, messageId, r);
            Metrics.Dropped(r);
            connection.Link.Enqueue((byte)MessengerOpcode.PeerDropped, 0, MessengerFrames.KeyAndBody(from, JsonSerializer.SerializeToUtf8Bytes(notice, MessengerJsonContext.Default.DropNotice)));
        }
    }

    private void OnPeerDropped(ServerConnection connection, ReadOnlySpan<byte> payload)
    {
        if (!IsPeer(connection.Key))
        {
            throw new ProtocolViolationException("PeerDropped from a key that is not a messenger of this store");
        }

        OnPeerDropped(payload);
    }

    private void OnPeerDropped(ReadOnlySpan<byte> payload)
    {
        MessengerFrames.ReadPeerDropped(payload, out var sender, out var json);
        DropNotice? notice;
        try
        {
            notice = JsonSerializer.Deserialize(json, MessengerJsonContext.Default.DropNotice);
        }
        catch (JsonException)
        {
            notice = null;
        }

        if (notice is null)
        {
            throw new ProtocolViolationException("PeerDropped carries no drop notice");
        }

        // Told to the sender's connections here, or kept for it; not passed on again.
        var targets = ConnectionsOf(sender);
        if (targets.Length == 0)
        {
            Store.StoreNotice(sender, notice);
            return;
        }

        var bytes = JsonSerializer.SerializeToUtf8Bytes(notice, MessengerJsonContext.Default.DropNotice);
        foreach (var target in targets)
        {
            target.Link.TryEnqueueBounded((byte)MessengerOpcode.Dropped, 0, bytes, [], Options.OutboundQueueLimit);
        }
    }

    /// <summary>A drop notice for a sender connected to another messenger: sent there when a link is up.</summary>
    private bool TryNotifyPeer(PubKey sender, DropNotice notice)
    {
        if (Presence is null)
        {
            return false;
        }

        foreach (var server in Presence.ServersOf(sender))
        {
            if (PeerLinkOf(server) is { } link)
            {
                return link.Enqueue((byte)MessengerOpcode.PeerDropped, 0, MessengerFrames.KeyAndBody(sender, JsonSerializer.SerializeToUtf8Bytes(notice, MessengerJsonContext.Default.DropNotice)));
            }
        }

        return false;
    }

    /// <summary>What waits here for <paramref name="user"/> (messages, drop notices) goes to the messenger it is connected to.</summary>
    private void FlushToPeer(PubKey user, MessengerLink link)
    {
        var expired = new List<(PubKey, DropNotice)>();
        var (messages, notices) = Store.TakeAll(user, expired);
        foreach (var stored in messages)
        {
            link.Enqueue((byte)MessengerOpcode.PeerSend, stored.MessageId, MessengerFrames.PeerSendPrefix(stored.From, user), stored.Envelope);
        }

        foreach (var notice in notices)
        {
            link.Enqueue((byte)MessengerOpcode.PeerDropped, 0, MessengerFrames.KeyAndBody(user, JsonSerializer.SerializeToUtf8Bytes(notice, MessengerJsonContext.Default.DropNotice)));
        }

        NotifyDrops(expired);
    }

    private void OnUserArrived(PubKey user, PubKey server)
    {
        if (IsOnline(user) || !Store.HasAny(user))
        {
            return;
        }

        if (PeerLinkOf(server) is { } link)
        {
            FlushToPeer(user, link); // else the link being opened flushes it
        }
    }

    private void OnServerGone(PubKey server)
    {
        PeerLink? peer;
        lock (_peerLock)
        {
            _peers.Remove(server, out peer);
        }

        peer?.Link?.Fail(ConnectionCloseReason.LocalClosed, "the messenger left the store");
    }

    private void OnPeerClosed(PubKey server, MessengerLink link)
    {
        lock (_peerLock)
        {
            if (_peers.TryGetValue(server, out var peer) && peer.Link == link)
            {
                _peers.Remove(server);
            }
        }

        Log.PeerClosed(_logger, server);
        _ = link.DisposeAsync().AsTask();
    }

    /// <summary>Keeps the links to other messengers alive (the other side closes a link it hears nothing on).</summary>
    private void PingPeers()
    {
        MessengerLink[] links;
        lock (_peerLock)
        {
            links = [.. _peers.Values.Select(p => p.Link).OfType<MessengerLink>()];
        }

        var quiet = (long)(Options.IdleTimeout.TotalMilliseconds / 3);
        foreach (var link in links)
        {
            if (Environment.TickCount64 - link.LastReadTick > quiet)
            {
                _ = link.RequestAsync((byte)MessengerOpcode.Ping, ReadOnlyMemory<byte>.Empty, Options.LivenessTimeout, CancellationToken.None)
                    .ContinueWith(t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            }
        }
    }

    private async Task DisposePeersAsync()
    {
        MessengerLink[] links;
        lock (_peerLock)
        {
            links = [.. _peers.Values.Select(p => p.Link).OfType<MessengerLink>()];
            _peers.Clear();
        }

        foreach (var link in links)
        {
            link.Fail(ConnectionCloseReason.LocalClosed, "messenger shutting down");
            await link.DisposeAsync();
        }

        if (Presence is not null)
        {
            await Presence.DisposeAsync();
        }
    }
}
