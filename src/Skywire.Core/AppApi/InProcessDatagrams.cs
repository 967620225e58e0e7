using Skywire.Core.Sessions;

namespace Skywire.Core.AppApi;

/// <summary>
/// A stream's datagram flow held by code in the node's own process (<see cref="AppApiServer.AttachInProcess"/>): the
/// app API's datagram connection without the connection. Sends go from the caller's thread straight into the session
/// (seal, UDP send); received datagrams reach <see cref="DatagramFlow.Receiver"/> on the node's receive thread, where
/// <see cref="ReceiveBurst"/> tells the receiver when a burst of them has been handed over. The vpn apps use it when
/// they run inside the node (docs/vpn.md "In the node's process"). Dispose to detach (the flow stays its stream's).
/// </summary>
public sealed class InProcessDatagrams : IDisposable
{
    private Action? _detach;

    internal InProcessDatagrams(DatagramFlow flow, Action detach)
    {
        Flow = flow;
        _detach = detach;
    }

    /// <summary>The flow.</summary>
    public DatagramFlow Flow { get; }

    /// <summary>Detaches: the receiver is cleared and the flow may be attached again (idempotent).</summary>
    public void Dispose() => Interlocked.Exchange(ref _detach, null)?.Invoke();
}
