using Skywire.Protocol;
using Skywire.Protocol.Messenger;

namespace Skywire.Core.Messenger;

/// <summary>A message waiting for an offline key.</summary>
internal sealed record StoredMessage(PubKey From, uint MessageId, byte[] Envelope, DateTimeOffset ExpiresAt);

/// <summary>
/// Bounded store-and-forward queues, one per offline key (docs/messenger.md "Store and forward"): at most
/// <see cref="MessengerServerOptions.QueueMaxMessages"/> messages and <see cref="MessengerServerOptions.QueueMaxBytes"/>
/// envelope bytes per key, each kept <see cref="MessengerServerOptions.QueueTtl"/>; over all keys at most
/// <see cref="MessengerServerOptions.StoreMaxBytes"/> bytes and <see cref="MessengerServerOptions.StoreMaxKeys"/> keys.
/// One sender may have at most <see cref="MessengerServerOptions.StoreMaxMessagesPerSender"/> messages and
/// <see cref="MessengerServerOptions.StoreMaxBytesPerSender"/> bytes stored over all keys, so that one key flooding many
/// offline recipients cannot fill the store for everyone else (refused as <see cref="DropReason.StoreFull"/>).
/// A message over a limit is refused (the newest is dropped, never an older one) and the caller tells the sender.
/// Drop notices for offline senders wait in a small queue of their own (oldest forgotten first).
/// </summary>
internal sealed class OfflineStore
{
    private readonly MessengerServerOptions _options;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private readonly Dictionary<PubKey, KeyQueue> _queues = [];
    private readonly Dictionary<PubKey, (int Messages, long Bytes)> _bySender = [];
    private long _totalBytes;

    public OfflineStore(MessengerServerOptions options, TimeProvider time)
    {
        _options = options;
        _time = time;
    }

    /// <summary>Envelope bytes stored over all keys.</summary>
    public long TotalBytes
    {
        get
        {
            lock (_lock)
            {
                return _totalBytes;
            }
        }
    }

    /// <summary>Messages waiting over all keys.</summary>
    public int TotalMessages
    {
        get
        {
            lock (_lock)
            {
                return _queues.Values.Sum(q => q.Messages.Count);
            }
        }
    }

    /// <summary>Messages and bytes <paramref name="sender"/> has stored over all keys.</summary>
    public (int Messages, long Bytes) StoredBy(PubKey sender)
    {
        lock (_lock)
        {
            return _bySender.GetValueOrDefault(sender);
        }
    }

    /// <summary>Messages waiting for <paramref name="key"/>.</summary>
    public int CountFor(PubKey key)
    {
        lock (_lock)
        {
            return _queues.TryGetValue(key, out var q) ? q.Messages.Count : 0;
        }
    }

    /// <summary>Whether messages or drop notices wait for <paramref name="key"/>.</summary>
    public bool HasAny(PubKey key)
    {
        lock (_lock)
        {
            return _queues.TryGetValue(key, out var q) && (q.Messages.Count > 0 || q.Notices.Count > 0);
        }
    }

    /// <summary>Every envelope stored now (tests: what the messenger holds).</summary>
    public List<byte[]> Snapshot()
    {
        lock (_lock)
        {
            return [.. _queues.Values.SelectMany(q => q.Messages).Select(m => m.Envelope)];
        }
    }

    /// <summary>Stores a message; returns null when stored, or why it was refused.</summary>
    public DropReason? TryStore(PubKey to, PubKey from, uint messageId, ReadOnlySpan<byte> envelope, List<(PubKey Sender, DropNotice Notice)> expired)
    {
        lock (_lock)
        {
            if (!_queues.TryGetValue(to, out var queue))
            {
                if (_queues.Count >= _options.StoreMaxKeys)
                {
                    return DropReason.StoreFull;
                }

                queue = new KeyQueue();
                _queues[to] = queue;
            }

            ExpireLocked(to, queue, expired);
            if (queue.Messages.Count >= _options.QueueMaxMessages || queue.Bytes + envelope.Length > _options.QueueMaxBytes)
            {
                RemoveIfEmptyLocked(to, queue);
                return DropReason.QueueFull;
            }

            var sent = _bySender.GetValueOrDefault(from);
            if (_totalBytes + envelope.Length > _options.StoreMaxBytes
                || sent.Messages >= _options.StoreMaxMessagesPerSender || sent.Bytes + envelope.Length > _options.StoreMaxBytesPerSender)
            {
                RemoveIfEmptyLocked(to, queue);
                return DropReason.StoreFull;
            }

            queue.Messages.Enqueue(new StoredMessage(from, messageId, envelope.ToArray(), _time.GetUtcNow() + _options.QueueTtl));
            queue.Bytes += envelope.Length;
            _totalBytes += envelope.Length;
            _bySender[from] = (sent.Messages + 1, sent.Bytes + envelope.Length);
            return null;
        }
    }

    /// <summary>Keeps a drop notice for an offline sender (bounded; the oldest is forgotten first).</summary>
    public void StoreNotice(PubKey sender, DropNotice notice)
    {
        lock (_lock)
        {
            if (!_queues.TryGetValue(sender, out var queue))
            {
                if (_queues.Count >= _options.StoreMaxKeys)
                {
                    return;
                }

                queue = new KeyQueue();
                _queues[sender] = queue;
            }

            queue.Notices.Enqueue(notice);
            while (queue.Notices.Count > _options.QueueMaxNotices)
            {
                queue.Notices.Dequeue();
            }
        }
    }

    /// <summary>Takes everything waiting for <paramref name="key"/>; expired messages become notices in <paramref name="expired"/>.</summary>
    public (List<StoredMessage> Messages, List<DropNotice> Notices) TakeAll(PubKey key, List<(PubKey Sender, DropNotice Notice)> expired)
    {
        lock (_lock)
        {
            if (!_queues.Remove(key, out var queue))
            {
                return ([], []);
            }

            ExpireLocked(key, queue, expired);
            _totalBytes -= queue.Bytes;
            foreach (var message in queue.Messages)
            {
                ForgetLocked(message);
            }

            return ([.. queue.Messages], [.. queue.Notices]);
        }
    }

    /// <summary>Removes expired messages everywhere; returns the notices their senders are owed.</summary>
    public List<(PubKey Sender, DropNotice Notice)> Sweep()
    {
        var expired = new List<(PubKey, DropNotice)>();
        lock (_lock)
        {
            foreach (var (key, queue) in _queues.ToList())
            {
                ExpireLocked(key, queue, expired);
                RemoveIfEmptyLocked(key, queue);
            }
        }

        return expired;
    }

    private void ExpireLocked(PubKey key, KeyQueue queue, List<(PubKey, DropNotice)> expired)
    {
        var now = _time.GetUtcNow();
        while (queue.Messages.TryPeek(out var head) && head.ExpiresAt <= now)
        {
            queue.Messages.Dequeue();
            queue.Bytes -= head.Envelope.Length;
            _totalBytes -= head.Envelope.Length;
            ForgetLocked(head);
            expired.Add((head.From, new DropNotice
            {
                To = key.ToString(),
                MessageId = head.MessageId,
                Reason = DropReason.Expired,
                Detail = $"not delivered within {_options.QueueTtl.TotalSeconds:0} s",
            }));
        }
    }

    private void ForgetLocked(StoredMessage message)
    {
        var (messages, bytes) = _bySender[message.From];
        if (messages == 1)
        {
            _bySender.Remove(message.From);
        }
        else
        {
            _bySender[message.From] = (messages - 1, bytes - message.Envelope.Length);
        }
    }

    private void RemoveIfEmptyLocked(PubKey key, KeyQueue queue)
    {
        if (queue.Messages.Count == 0 && queue.Notices.Count == 0)
        {
            _queues.Remove(key);
        }
    }

    private sealed class KeyQueue
    {
        public Queue<StoredMessage> Messages { get; } = new();
        public Queue<DropNotice> Notices { get; } = new();
        public long Bytes { get; set; }
    }
}
