using System.Threading.Channels;
using Viscript.Core.Control;

namespace Viscript.Daemon;

/// <summary>Fans process events out to the REPL and every event-stream client. A slow subscriber loses its oldest events, never blocks the supervisor.</summary>
public sealed class EventHub
{
    private readonly Lock _gate = new();
    private readonly List<Channel<ProcessEvent>> _subscribers = [];

    /// <summary>Publishes to every subscriber (non-blocking).</summary>
    public void Publish(ProcessEvent e)
    {
        lock (_gate)
        {
            foreach (var s in _subscribers)
            {
                s.Writer.TryWrite(e);
            }
        }
    }

    /// <summary>Subscribes; dispose the returned handle to leave.</summary>
    public Subscription Subscribe(int capacity = 4096)
    {
        var channel = Channel.CreateBounded<ProcessEvent>(new BoundedChannelOptions(capacity) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });
        lock (_gate)
        {
            _subscribers.Add(channel);
        }
        return new Subscription(this, channel);
    }

    /// <summary>A subscription to the hub.</summary>
    public sealed class Subscription(EventHub hub, Channel<ProcessEvent> channel) : IDisposable
    {
        /// <summary>Events, in order.</summary>
        public ChannelReader<ProcessEvent> Reader => channel.Reader;

        /// <inheritdoc/>
        public void Dispose()
        {
            lock (hub._gate)
            {
                hub._subscribers.Remove(channel);
            }
            channel.Writer.TryComplete();
        }
    }
}
