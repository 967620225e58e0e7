using System.Net.Sockets;
using System.Threading.Channels;

namespace Skywire.Core.AppApi;

/// <summary>
/// The app names registered on this node's app API, each held by the connection that registered it. A name is freed
/// when its connection's serve loop ends; but that loop notices a closed connection only when it next reads, so a
/// registration that claims a name still held by a connection whose app already closed it (end of stream or reset
/// waiting unread in the socket) takes the name over (<see cref="Claim"/>). A name held by a live connection, even an
/// idle or busy one, is never taken: that would let one local app hijack another's name.
/// </summary>
internal sealed class AppRegistry
{
    /// <summary>Streams waiting for one app's accepts (a full queue refuses the next incoming stream).</summary>
    internal const int AcceptBacklog = 16;

    private readonly object _sync = new();
    private readonly Dictionary<string, Registration> _apps = new(StringComparer.Ordinal);

    /// <summary>One app's name, the connection that holds it, and the incoming streams waiting for its accepts.</summary>
    internal sealed class Registration(string name, Socket owner)
    {
        public string Name { get; } = name;

        public Socket Owner { get; } = owner;

        public Channel<IncomingStream> Queue { get; } =
            Channel.CreateBounded<IncomingStream>(new BoundedChannelOptions(AcceptBacklog) { FullMode = BoundedChannelFullMode.Wait });
    }

    /// <summary>Names registered now.</summary>
    public IReadOnlyList<string> Names
    {
        get
        {
            lock (_sync)
            {
                return [.. _apps.Keys];
            }
        }
    }

    /// <summary>
    /// Registers <paramref name="name"/> for the connection <paramref name="owner"/>. When another connection holds it
    /// but that connection is closed or closing, the name is taken over and the old registration is returned in
    /// <paramref name="reclaimed"/> (the caller releases what it held: its queued streams and its tracker entry).
    /// </summary>
    /// <exception cref="AppApiException">Conflict: a live connection holds the name.</exception>
    public Registration Claim(string name, Socket owner, out Registration? reclaimed)
    {
        lock (_sync)
        {
            reclaimed = null;
            if (_apps.TryGetValue(name, out var held))
            {
                if (!IsClosedOrClosing(held.Owner))
                {
                    throw new AppApiException(Protocol.AppApi.AppApiErrorCode.Conflict, $"an app named '{name}' is already registered on this node");
                }

                reclaimed = held;
            }

            var registration = new Registration(name, owner);
            _apps[name] = registration;
            return registration;
        }
    }

    /// <summary>
    /// Removes <paramref name="registration"/> if it still holds its name; false when it was taken over meanwhile
    /// (then the name and its tracker entry belong to the new holder and must be left alone).
    /// </summary>
    public bool Release(Registration registration)
    {
        lock (_sync)
        {
            if (!_apps.TryGetValue(registration.Name, out var current) || !ReferenceEquals(current, registration))
            {
                return false;
            }

            _apps.Remove(registration.Name);
            return true;
        }
    }

    /// <summary>The accept queue of the app registered as <paramref name="name"/>, if any.</summary>
    public Channel<IncomingStream>? Find(string name)
    {
        lock (_sync)
        {
            return _apps.TryGetValue(name, out var registration) ? registration.Queue : null;
        }
    }

    /// <summary>Queues an incoming stream for <paramref name="name"/>; false when no such app or its backlog is full.</summary>
    public bool TryDeliver(string name, IncomingStream stream)
    {
        lock (_sync)
        {
            return _apps.TryGetValue(name, out var registration) && registration.Queue.Writer.TryWrite(stream);
        }
    }

    /// <summary>Ends every accept queue (the server stops).</summary>
    public void CompleteAll()
    {
        lock (_sync)
        {
            foreach (var registration in _apps.Values)
            {
                registration.Queue.Writer.TryComplete();
            }
        }
    }

    /// <summary>
    /// True when the app closed (or reset) the connection and its serve loop has not read that yet. An app sends
    /// nothing unasked on its control connection, so "readable with nothing to read" is end of stream or an error;
    /// unread bytes mean the app is talking, so it is alive. A socket already disposed is closed.
    /// </summary>
    internal static bool IsClosedOrClosing(Socket socket)
    {
        try
        {
            return socket.Poll(0, SelectMode.SelectRead) && socket.Available == 0;
        }
        catch (Exception ex) when (ex is ObjectDisposedException or SocketException)
        {
            return true;
        }
    }
}
