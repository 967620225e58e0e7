using System.Net;
using System.Net.Sockets;

namespace Skywire.Core.Channels;

/// <summary>
/// A listener could not bind its address (in use, not on this host, no permission). Names the listener and the
/// address, so an operator with several listeners in one process knows which flag to change (issue 18.4).
/// </summary>
public sealed class ListenerBindException : Exception
{
    /// <summary>Wraps the socket error of binding <paramref name="listener"/> to <paramref name="endPoint"/>.</summary>
    public ListenerBindException(string listener, EndPoint endPoint, SocketException inner)
        : base($"{listener} cannot listen on {endPoint}: {Describe(inner)}", inner)
    {
        Listener = listener;
        EndPoint = endPoint;
        SocketError = inner.SocketErrorCode;
    }

    /// <summary>For serializers and analyzers; prefer the constructor that names the listener.</summary>
    public ListenerBindException() : this("listener", new IPEndPoint(IPAddress.None, 0), new SocketException((int)SocketError.SocketError))
    {
    }

    /// <summary>For analyzers; prefer the constructor that names the listener.</summary>
    public ListenerBindException(string message) : base(message)
    {
        Listener = "listener";
        EndPoint = new IPEndPoint(IPAddress.None, 0);
    }

    /// <summary>For analyzers; prefer the constructor that names the listener.</summary>
    public ListenerBindException(string message, Exception inner) : base(message, inner)
    {
        Listener = "listener";
        EndPoint = new IPEndPoint(IPAddress.None, 0);
    }

    /// <summary>Which listener (e.g. "app API (TCP)", "links (UDP)").</summary>
    public string Listener { get; }

    /// <summary>The address it tried to bind.</summary>
    public EndPoint EndPoint { get; }

    /// <summary>The socket error (AddressAlreadyInUse, AddressNotAvailable, AccessDenied...).</summary>
    public SocketError SocketError { get; }

    /// <summary>Runs <paramref name="bind"/>, turning a socket error into a <see cref="ListenerBindException"/> naming the listener.</summary>
    /// <exception cref="ListenerBindException">The bind failed.</exception>
    public static T Bind<T>(string listener, EndPoint endPoint, Func<T> bind)
    {
        ArgumentNullException.ThrowIfNull(bind);
        try
        {
            return bind();
        }
        catch (SocketException ex)
        {
            throw new ListenerBindException(listener, endPoint, ex);
        }
    }

    /// <summary>Runs <paramref name="bind"/>, turning a socket error into a <see cref="ListenerBindException"/> naming the listener.</summary>
    /// <exception cref="ListenerBindException">The bind failed.</exception>
    public static void Bind(string listener, EndPoint endPoint, Action bind)
    {
        ArgumentNullException.ThrowIfNull(bind);
        Bind(listener, endPoint, () =>
        {
            bind();
            return 0;
        });
    }

    private static string Describe(SocketException ex) => ex.SocketErrorCode switch
    {
        SocketError.AddressAlreadyInUse => "address already in use (another process listens there; choose another port, or 0 for any)",
        SocketError.AddressNotAvailable => "address not available (no interface of this host has that IP)",
        SocketError.AccessDenied => "permission denied (ports below 1024 need privileges)",
        _ => ex.Message,
    };
}
