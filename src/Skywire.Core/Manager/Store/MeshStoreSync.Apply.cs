using Skywire.Protocol;

namespace Skywire.Core.Manager.Store;

/// <summary>
/// Inbound: one watch of the whole prefix, mirrored in <see cref="_view"/>. A snapshot (the first one, or one after the
/// store lost the history in between) is diffed against the mirror, so the controller always sees puts and deletes.
/// Keys this manager wrote are skipped (it knows them first-hand); anything malformed is skipped and counted.
/// </summary>
public sealed partial class MeshStoreSync
{
    private readonly Dictionary<string, StoreEntry> _view = new(StringComparer.Ordinal);
    private readonly HashSet<string> _liveManagers = new(StringComparer.Ordinal);
    private readonly Dictionary<PubKey, List<LinkReport>> _remoteLinks = [];
    private long _ignored;
    private int _nodesJoined;

    /// <summary>Values from the store that were malformed or hostile and were ignored.</summary>
    public long IgnoredValues => Interlocked.Read(ref _ignored);

    /// <summary>The managers alive in the store now (ids), this one included once its key is written.</summary>
    public IReadOnlyCollection<string> LiveManagers
    {
        get
        {
            lock (_liveManagers)
            {
                return [.. _liveManagers];
            }
        }
    }

    private async Task WatchLoopAsync()
    {
        var stopping = _cts.Token;
        try
        {
            await foreach (var change in _store.WatchAsync("", stopping))
            {
                if (change.Kind == StoreChangeKind.Snapshot)
                {
                    ApplySnapshot(change.Snapshot!);
                    Synchronized = true;
                }
                else
                {
                    ApplyOne(change.Kind, change.Entry!);
                }

                Applied?.Invoke();
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private void ApplySnapshot(StoreSnapshot snapshot)
    {
        var next = snapshot.Entries.ToDictionary(e => e.Key, StringComparer.Ordinal);
        foreach (var (key, old) in _view.ToList())
        {
            if (!next.ContainsKey(key))
            {
                ApplyOne(StoreChangeKind.Delete, old);
            }
        }

        foreach (var entry in snapshot.Entries)
        {
            if (!_view.TryGetValue(entry.Key, out var old) || old.ModRevision != entry.ModRevision)
            {
                ApplyOne(StoreChangeKind.Put, entry);
            }
        }
    }

    /// <summary>
    /// Applies one key. A value the codec let through but the controller refused is skipped and counted, and only that
    /// key: one hostile value in a snapshot must not keep the keys after it (commands among them) from being applied.
    /// </summary>
    private void ApplyOne(StoreChangeKind kind, StoreEntry entry)
    {
        try
        {
            Apply(kind, entry);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Interlocked.Increment(ref _ignored);
            Log.ApplyFailed(_logger, Quote.Of(entry.Key, 200), ex.Message);
        }
    }

    private void Apply(StoreChangeKind kind, StoreEntry entry)
    {
        var key = entry.Key;
        StoreEntry? previous;
        if (kind == StoreChangeKind.Put)
        {
            _view.TryGetValue(key, out previous);
            _view[key] = entry;
        }
        else
        {
            _view.Remove(key, out previous);
            // A delete carries the last value when the store knows it; else the mirror does.
            if (entry.Value.Length == 0 && previous is not null)
            {
                entry = previous;
            }
        }

        var put = kind == StoreChangeKind.Put;
        if (key.StartsWith(MeshStoreCodec.Managers, StringComparison.Ordinal))
        {
            ApplyManager(key[MeshStoreCodec.Managers.Length..], put);
        }
        else if (key.StartsWith(MeshStoreCodec.Presence, StringComparison.Ordinal))
        {
            ApplyPresence(key, entry, put);
        }
        else if (key.StartsWith(MeshStoreCodec.Links, StringComparison.Ordinal))
        {
            ApplyLinks(key, entry, put);
        }
        else if (key.StartsWith(MeshStoreCodec.Apps, StringComparison.Ordinal))
        {
            ApplyApp(key, entry, put);
        }
        else if (key.StartsWith(MeshStoreCodec.Routes, StringComparison.Ordinal))
        {
            ApplyRoute(key, entry, put);
        }
        else if (key.StartsWith(MeshStoreCodec.Commands, StringComparison.Ordinal))
        {
            if (put)
            {
                ApplyCommand(key, entry);
            }
        }
        else if (key.StartsWith(MeshStoreCodec.Acks, StringComparison.Ordinal))
        {
            if (put)
            {
                ApplyAck(key, entry);
            }
        }
    }

    private void ApplyManager(string id, bool put)
    {
        if (id.Length == 0)
        {
            return;
        }

        lock (_liveManagers)
        {
            if (put)
            {
                _liveManagers.Add(id);
            }
            else
            {
                _liveManagers.Remove(id);
            }
        }

        if (!put && id != ManagerId)
        {
            Log.ManagerGone(_logger, id);
        }
    }

    private void ApplyPresence(string key, StoreEntry entry, bool put)
    {
        if (MeshStoreCodec.NodeOf(key, MeshStoreCodec.Presence) is not { } node)
        {
            Ignore(key);
            return;
        }

        var value = MeshStoreCodec.TryDecode<PresenceValue>(entry.Value);
        if (put)
        {
            if (value is null || value.Manager.Length == 0 || !System.Net.IPEndPoint.TryParse(value.Link, out _))
            {
                Ignore(key);
                return;
            }

            if (value.Manager != ManagerId)
            {
                _controller.RemoteNodeOnline(node, value.Link);
                NodeJoined();
            }
        }
        else if (value?.Manager != ManagerId)
        {
            _controller.RemoteNodeOffline(node);
        }
    }

    private void ApplyLinks(string key, StoreEntry entry, bool put)
    {
        if (MeshStoreCodec.NodeOf(key, MeshStoreCodec.Links) is not { } node)
        {
            Ignore(key);
            return;
        }

        var value = MeshStoreCodec.TryDecode<LinksValue>(entry.Value);
        if (value?.Manager == ManagerId)
        {
            return;
        }

        if (!put)
        {
            lock (_remoteLinks)
            {
                _remoteLinks.Remove(node);
            }

            _controller.RemoteLinks(node, []);
            return;
        }

        if (value is null || value.Links.Count > _options.Limits.MaxLinksPerNode)
        {
            Ignore(key);
            return;
        }

        // Held, not timed: the report holds while its key does (its manager rewrites it with each change and deletes it
        // when the node leaves; the key goes with that manager's lease). A local clock stamp would let reports age out
        // while a long pass (a 100 000-node snapshot) or a manager cut off from the store still holds them.
        var reports = new List<LinkReport>(value.Links.Count);
        foreach (var link in value.Links)
        {
            if (link is not null && PubKey.TryParse(link.Peer, out var peer) && peer != node)
            {
                reports.Add(new LinkReport(node, peer, link.Up, link.Rtt, link.Loss, LinkReport.HeldByStore));
            }
        }

        lock (_remoteLinks)
        {
            _remoteLinks[node] = reports;
        }

        _controller.RemoteLinks(node, reports);
    }

    /// <summary>A node became known here (this manager's or another's): reports that named it can now be fed.</summary>
    internal void NodeJoined() => Volatile.Write(ref _nodesJoined, 1);

    /// <summary>
    /// Feeds the link reports of other managers' nodes again when a node joined since the last call (every maintenance
    /// tick): the controller keeps only reports between known nodes, and a snapshot applies links/ before presence/,
    /// so a report that arrived before its node or peer did is taken when they are known. Nothing happens otherwise:
    /// the reports do not age (<see cref="LinkReport.HeldByStore"/>), so there is nothing to re-stamp.
    /// </summary>
    internal void RefeedRemoteLinks()
    {
        if (Interlocked.Exchange(ref _nodesJoined, 0) == 0)
        {
            return;
        }

        List<(PubKey Node, List<LinkReport> Reports)> all;
        lock (_remoteLinks)
        {
            all = [.. _remoteLinks.Select(r => (r.Key, r.Value))];
        }

        foreach (var (node, reports) in all)
        {
            _controller.RemoteLinks(node, reports);
        }
    }

    private void ApplyApp(string key, StoreEntry entry, bool put)
    {
        if (MeshStoreCodec.AppOf(key) is not { } app)
        {
            Ignore(key);
            return;
        }

        var value = MeshStoreCodec.TryDecode<AppValue>(entry.Value);
        if (value?.Manager == ManagerId)
        {
            return;
        }

        if (put && value is null)
        {
            Ignore(key);
            return;
        }

        _controller.RemoteApp(app.Node, app.Name, put ? value!.Type : null);
    }

    private void Ignore(string key)
    {
        Interlocked.Increment(ref _ignored);
        Log.ValueIgnored(_logger, Quote.Of(key, 200));
    }
}
