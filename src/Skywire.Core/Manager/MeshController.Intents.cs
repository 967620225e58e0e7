using System.Collections.Concurrent;
using Skywire.Core.Channels;
using Skywire.Protocol;
using Skywire.Protocol.Control;

namespace Skywire.Core.Manager;

/// <summary>
/// Links as standing intents (docs/protocol.md §4.5): every link the manager was asked for (or learned from the
/// nodes' reports) is re-opened whenever both ends are online and the link is not confirmed by both, after a node
/// restart, a stall or a manager restart alike. Each pair retries with capped backoff and jitter; a node that
/// registers again makes its pairs due at once.
/// </summary>
public sealed partial class MeshController
{
    private readonly ConcurrentDictionary<(PubKey, PubKey), IntentRetry> _intentRetries = new();

    /// <summary>The links the manager keeps open.</summary>
    public LinkIntents Intents { get; } = new();

    /// <summary>
    /// Withdraws the standing intent between <paramref name="a"/> and <paramref name="b"/> and asks both ends to close
    /// the link (best effort: an offline end's side goes down with its process).
    /// </summary>
    /// <exception cref="ControlException">BadRequest for one node twice; NotFound when there was neither an intent nor a link to close.</exception>
    public async Task UnlinkNodesAsync(PubKey a, PubKey b, CancellationToken cancellationToken)
    {
        if (a == b)
        {
            throw new ControlException(ControlErrorCode.BadRequest, "a node has no link to itself");
        }

        var removed = Intents.Remove(a, b);
        _intentRetries.TryRemove(LinkIntents.PairOf(a, b), out _);
        var closed = false;
        foreach (var (x, y) in new[] { (a, b), (b, a) })
        {
            if (!Nodes.IsOnline(x))
            {
                continue;
            }

            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping);
                timeout.CancelAfter(_options.CommandTimeout);
                await Channel(x).CloseLinkAsync(new CloseLinkMessage { Peer = y.ToString() }, timeout.Token);
                closed = true;
            }
            catch (Exception ex) when (ex is ControlException or OperationCanceledException)
            {
                // Best effort: the intent is gone, so nobody re-opens the link.
            }
        }

        if (!removed && !closed)
        {
            throw new ControlException(ControlErrorCode.NotFound, $"no link between {a.ToShortString(12)} and {b.ToShortString(12)}");
        }

        Log.Unlinked(_logger, a, b);
    }

    /// <summary>
    /// Auto-link (<see cref="ManagerOptions.AutoLink"/>) for a node that registered here: an intent to every node online
    /// now. A pair whose other end is connected to another manager is left to the manager of the pair's lower key
    /// (<see cref="AutoLinkRemote"/>), so that each cross-manager pair is opened from one side only.
    /// </summary>
    private void AutoLinkLocal(PubKey key)
    {
        if (!_options.AutoLink)
        {
            return;
        }

        foreach (var other in Nodes.OnlineKeys().Where(k => k != key && (_connections.ContainsKey(k) || key.CompareTo(k) < 0)))
        {
            AddAutoLink(key, other);
        }
    }

    /// <summary>
    /// Auto-link for a node that came online at another manager (seen in the store): an intent from every node connected
    /// here whose key is lower. Without it, two nodes that registered with different managers before either manager
    /// had seen the other in the store (the managers started before etcd, as in samples/mesh/etcd-mesh.yaml) were
    /// never linked: auto-link only looked at the nodes online when a node registered.
    /// </summary>
    private void AutoLinkRemote(PubKey remote)
    {
        if (!_options.AutoLink)
        {
            return;
        }

        foreach (var local in _connections.Keys.Where(k => k.CompareTo(remote) < 0 && Nodes.IsOnline(k)))
        {
            AddAutoLink(local, remote);
        }
    }

    private void AddAutoLink(PubKey from, PubKey to)
    {
        var now = _time.GetUtcNow();
        if (Intents.TryAdd(from, to, now))
        {
            RetryOf(Intents.Get(from, to)!).Kick(now, immediate: true);
        }
    }

    /// <summary>Makes the intents of a node that (re)registered due: at once when <paramref name="immediate"/>, else after the report grace.</summary>
    private void KickIntents(PubKey node, bool immediate)
    {
        var now = _time.GetUtcNow();
        foreach (var intent in Intents.Of(node))
        {
            RetryOf(intent).Kick(now, immediate);
        }
    }

    /// <summary>
    /// One pass over the intents (every maintenance tick, and after a registration): a pair whose ends are both online
    /// and whose link is not in the route graph is re-opened when its retry is due.
    /// </summary>
    internal void TendIntents()
    {
        var now = _time.GetUtcNow();
        var graph = Graph();
        // Two report intervals: a node reports at once when a link changes, so a link that was just opened or a node
        // that just registered has said so by then.
        var grace = _options.ReportInterval * 2;
        foreach (var intent in Intents.Snapshot())
        {
            var retry = RetryOf(intent);
            if (!Nodes.IsOnline(intent.From) || !Nodes.IsOnline(intent.To))
            {
                retry.Away();
                continue;
            }

            if (graph.HasLink(intent.From, intent.To))
            {
                retry.Confirmed();
                continue;
            }

            if (retry.TryStart(now, grace))
            {
                _ = ReopenAsync(intent, retry);
            }
        }
    }

    private IntentRetry RetryOf(LinkIntent intent) =>
        _intentRetries.GetOrAdd(LinkIntents.PairOf(intent.From, intent.To), _ => new IntentRetry(new Backoff(_options.LinkRetryDelay, _options.MaxLinkRetryDelay)));

    private async Task ReopenAsync(LinkIntent intent, IntentRetry retry)
    {
        try
        {
            var to = Nodes.Get(intent.To);
            if (to is not { Online: true } || !Nodes.IsOnline(intent.From))
            {
                return;
            }

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping);
            timeout.CancelAfter(_options.CommandTimeout);
            var channel = Channel(intent.From);
            // The opener still holds a link its peer lost (the peer restarted on the same address): close the stale
            // keys first, or opening would return at once on a link only one end has.
            if (Links.Get(intent.From, intent.To) is { Up: true } && Links.Get(intent.To, intent.From) is not { Up: true })
            {
                await channel.CloseLinkAsync(new CloseLinkMessage { Peer = intent.To.ToString() }, timeout.Token);
            }

            await channel.OpenLinkAsync(new OpenLinkMessage { Peer = intent.To.ToString(), Address = to.LinkAddress }, timeout.Token);
            Log.LinkReopened(_logger, intent.From, intent.To, retry.Attempts);
        }
        catch (Exception ex) when (ex is ControlException or OperationCanceledException)
        {
            Log.LinkReopenFailed(_logger, intent.From, intent.To, retry.Attempts, ex.Message);
        }
        finally
        {
            retry.Done();
        }
    }

    /// <summary>When a pair's link is opened next (one per pair; its own lock).</summary>
    private sealed class IntentRetry(Backoff backoff)
    {
        private readonly Lock _sync = new();
        private DateTimeOffset _next = DateTimeOffset.MinValue;
        private DateTimeOffset? _unconfirmedSince;
        private bool _due;
        private bool _immediate;
        private bool _inFlight;

        public int Attempts
        {
            get
            {
                lock (_sync)
                {
                    return backoff.Attempts;
                }
            }
        }

        /// <summary>A registration: start over (at once, or once the grace has passed).</summary>
        public void Kick(DateTimeOffset now, bool immediate)
        {
            lock (_sync)
            {
                backoff.Reset();
                _due = true;
                _immediate |= immediate;
                _unconfirmedSince = now;
            }
        }

        /// <summary>An opening the controller makes itself (cli LinkNodes): the next retry waits a backoff delay.</summary>
        public void Attempted(DateTimeOffset now)
        {
            lock (_sync)
            {
                _due = false;
                _immediate = false;
                _unconfirmedSince ??= now;
                _next = now + backoff.Next();
            }
        }

        public void Confirmed()
        {
            lock (_sync)
            {
                backoff.Reset();
                _due = false;
                _immediate = false;
                _unconfirmedSince = null;
                _next = DateTimeOffset.MinValue;
            }
        }

        public void Away()
        {
            lock (_sync)
            {
                _unconfirmedSince = null;
            }
        }

        public bool TryStart(DateTimeOffset now, TimeSpan grace)
        {
            lock (_sync)
            {
                _unconfirmedSince ??= now;
                if (_inFlight)
                {
                    return false;
                }

                var ready = _immediate || (now - _unconfirmedSince.Value >= grace && (_due || now >= _next));
                if (!ready)
                {
                    return false;
                }

                _inFlight = true;
                _due = false;
                _immediate = false;
                _next = now + backoff.Next();
                return true;
            }
        }

        public void Done()
        {
            lock (_sync)
            {
                _inFlight = false;
            }
        }
    }
}
