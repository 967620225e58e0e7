using Microsoft.Extensions.Logging;
using Skywire.Core.Sessions;
using Skywire.Core.Sessions.Mux;
using Skywire.Protocol;
using Skywire.Protocol.Sessions;

namespace Skywire.Core.Node;

/// <summary>
/// One end-to-end session of a node: the secure datagram path, its stream multiplexer and accept loop, and its datagram
/// flows. Received session datagrams are told apart by their first byte: flow datagrams (docs/protocol.md §6.3) go to
/// <see cref="Flows"/>, everything else to the multiplexer (which drops what it cannot parse).
/// </summary>
internal sealed class MeshSession : IAsyncDisposable
{
    private readonly NodeHost _node;
    private readonly Task _acceptLoop;
    private int _disposed;

    public MeshSession(NodeHost node, SecureSession secure, MuxOptions options, ILoggerFactory loggerFactory, TimeProvider time, bool direct = false,
        DatagramFlowStatistics? flowStatistics = null)
    {
        _node = node;
        IsDirect = direct;
        Secure = secure;
        Mux = new StreamMultiplexer(secure, options, loggerFactory.CreateLogger<StreamMultiplexer>(), time);
        Flows = new SessionFlows(secure, flowStatistics);
        secure.Receiver = OnDatagram;
        secure.Closed += (_, reason) => _ = CloseAsync("secure session closed: " + reason);
        _ = Mux.Completion.ContinueWith(_ => CloseAsync("multiplexer closed: " + Mux.CloseReason), TaskScheduler.Default);
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    public SecureSession Secure { get; }

    /// <summary>True for a session over a brokered direct link to another cluster's node (no manager knows it).</summary>
    public bool IsDirect { get; }

    public StreamMultiplexer Mux { get; }

    /// <summary>The datagram flows of this session's streams.</summary>
    public SessionFlows Flows { get; }

    public ulong SessionId => Secure.SessionId;

    public PubKey Peer => Secure.Peer;

    public bool IsInitiator => Secure.IsInitiator;

    public bool IsUsable => _disposed == 0 && Secure.State != SecureSessionState.Closed && !Mux.Completion.IsCompleted;

    private void OnDatagram(ReadOnlySpan<byte> datagram)
    {
        if (!datagram.IsEmpty && datagram[0] == FlowDatagram.Type)
        {
            Flows.Deliver(datagram);
            return;
        }

        Mux.Receive(datagram);
    }

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            MuxStream stream;
            try
            {
                stream = await Mux.AcceptStreamAsync();
            }
            catch (Exception ex) when (ex is MuxException or OperationCanceledException or ObjectDisposedException)
            {
                return;
            }

            _node.DeliverIncoming(this, stream);
        }
    }

    /// <summary>Closes the session (its streams fail; idempotent) with <paramref name="reason"/> as what ended it.</summary>
    public async Task CloseAsync(string reason)
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _node.SessionEnded(this, reason);
        Flows.CloseAll();
        Secure.Dispose();
        await Mux.DisposeAsync();
        await _acceptLoop;
    }

    public ValueTask DisposeAsync() => new(CloseAsync("closed locally"));
}
