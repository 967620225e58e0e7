using Skywire.Core.Streams;
using Skywire.Protocol.Control;

namespace Skywire.Core.AppApi;

/// <summary>What the app API needs from its node.</summary>
public interface IAppHost
{
    /// <summary>The node's public key (66 hex).</summary>
    string NodeKey { get; }

    /// <summary>Registers an app with the manager's tracker.</summary>
    Task RegisterAppAsync(string name, string type, CancellationToken cancellationToken);

    /// <summary>Removes an app from the tracker (best effort).</summary>
    Task UnregisterAppAsync(string name, CancellationToken cancellationToken);

    /// <summary>Queries the tracker.</summary>
    Task<AppListResultMessage> ListAppsAsync(AppListMessage query, CancellationToken cancellationToken);

    /// <summary>Opens a mesh stream to an app on a node (a mux stream, or a messenger-relayed stream to another cluster).</summary>
    /// <exception cref="AppApiException">No route, unknown node, refused.</exception>
    Task<DuplexStream> DialAsync(string node, string app, string? from, CancellationToken cancellationToken);

    /// <summary>
    /// Opens the datagram flow of a stream this host handed out (docs/protocol.md §6.3), or null when the stream cannot
    /// carry datagrams (relayed by a messenger, or a host without sessions). The caller closes the flow when the stream ends.
    /// </summary>
    Sessions.DatagramFlow? OpenDatagramFlow(DuplexStream stream) => null;

    /// <summary>What the node is and which underlay addresses it talks to (<see cref="Protocol.AppApi.AppApiOpcode.NodeInfo"/>).</summary>
    Protocol.AppApi.NodeInfoMessage GetNodeInfo() => new() { Node = NodeKey };
}

/// <summary>An app API request failed with a stable code.</summary>
public sealed class AppApiException : Exception
{
    public AppApiException(Protocol.AppApi.AppApiErrorCode code, string message) : base(message) => Code = code;
    public AppApiException() : this(Protocol.AppApi.AppApiErrorCode.Internal, "app API request failed") { }
    public AppApiException(string message) : this(Protocol.AppApi.AppApiErrorCode.Internal, message) { }
    public AppApiException(string message, Exception inner) : base(message, inner) => Code = Protocol.AppApi.AppApiErrorCode.Internal;

    /// <summary>The stable error code.</summary>
    public Protocol.AppApi.AppApiErrorCode Code { get; }
}

/// <summary>A mesh stream arriving for a local app.</summary>
/// <param name="Stream">The stream (a mux stream, or a messenger-relayed stream).</param>
/// <param name="RemoteNode">The dialing node's key.</param>
/// <param name="RemoteApp">The dialing app's name, when it gave one.</param>
public sealed record IncomingStream(DuplexStream Stream, string RemoteNode, string? RemoteApp);
