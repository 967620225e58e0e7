using System.Net;
using Viscript.Signal;

namespace Viscript.Core.Supervision;

/// <summary>What the supervisor needs from the signal server (a seam for tests).</summary>
public interface ISignalGateway
{
    /// <summary>Address children get in SIGNAL_SERVER_ADDRESS (host:port), or null when no signal server runs.</summary>
    string? ClientAddress { get; }

    /// <summary>Token children must present (SIGNAL_TOKEN) because they reach the server through a non-loopback address; null otherwise.</summary>
    string? ClientToken => null;

    /// <summary>Currently registered clients.</summary>
    IReadOnlyList<SignalClientInfo> Clients { get; }

    /// <summary>Looks a registered client up by id.</summary>
    bool TryGetClient(ulong id, out SignalClientInfo? client);

    /// <summary>Signal PING round trip.</summary>
    Task<TimeSpan> PingAsync(ulong id, CancellationToken cancellationToken = default);

    /// <summary>Signal TOP.</summary>
    Task<ResourceUsage> TopAsync(ulong id, CancellationToken cancellationToken = default);

    /// <summary>Signal SHUTDOWN; returns the pid the client reports.</summary>
    Task<int> ShutdownAsync(ulong id, CancellationToken cancellationToken = default);

    /// <summary>A client registered.</summary>
    event EventHandler<SignalClientInfo>? ClientRegistered;

    /// <summary>A registered client disconnected.</summary>
    event EventHandler<SignalClientInfo>? ClientDisconnected;
}

/// <summary>No signal server: nothing registers, every call fails with NotRegistered.</summary>
public sealed class NullSignalGateway : ISignalGateway
{
    /// <summary>The instance.</summary>
    public static NullSignalGateway Instance { get; } = new();

    /// <inheritdoc/>
    public string? ClientAddress => null;

    /// <inheritdoc/>
    public IReadOnlyList<SignalClientInfo> Clients => [];

    /// <inheritdoc/>
    public bool TryGetClient(ulong id, out SignalClientInfo? client)
    {
        client = null;
        return false;
    }

    /// <inheritdoc/>
    public Task<TimeSpan> PingAsync(ulong id, CancellationToken cancellationToken = default) => Task.FromException<TimeSpan>(NotRegistered(id));

    /// <inheritdoc/>
    public Task<ResourceUsage> TopAsync(ulong id, CancellationToken cancellationToken = default) => Task.FromException<ResourceUsage>(NotRegistered(id));

    /// <inheritdoc/>
    public Task<int> ShutdownAsync(ulong id, CancellationToken cancellationToken = default) => Task.FromException<int>(NotRegistered(id));

    private static SignalException NotRegistered(ulong id) => new(SignalErrorKind.NotRegistered, $"no signal client with id {id}");

    /// <inheritdoc/>
    public event EventHandler<SignalClientInfo>? ClientRegistered { add { } remove { } }

    /// <inheritdoc/>
    public event EventHandler<SignalClientInfo>? ClientDisconnected { add { } remove { } }
}

/// <summary>Adapts a started <see cref="SignalServer"/> to <see cref="ISignalGateway"/>.</summary>
public sealed class SignalServerGateway : ISignalGateway
{
    private readonly SignalServer _server;

    /// <summary>Wraps <paramref name="server"/>, which must already be started.</summary>
    public SignalServerGateway(SignalServer server)
    {
        _server = server;
        var ep = server.LocalEndPoint;
        // Children connect from this host: a wildcard listener is reached through loopback.
        var host = ep.Address.Equals(IPAddress.Any) ? IPAddress.Loopback
            : ep.Address.Equals(IPAddress.IPv6Any) ? IPAddress.IPv6Loopback
            : ep.Address;
        ClientAddress = new IPEndPoint(host, ep.Port).ToString();
        // Only a child that connects through a non-loopback address needs the token; loopback children never see it.
        ClientToken = IPAddress.IsLoopback(host) ? null : server.Options.Token;
        server.ClientRegistered += (_, c) => ClientRegistered?.Invoke(this, c);
        server.ClientDisconnected += (_, c) => ClientDisconnected?.Invoke(this, c);
    }

    /// <inheritdoc/>
    public string? ClientAddress { get; }

    /// <inheritdoc/>
    public string? ClientToken { get; }

    /// <inheritdoc/>
    public IReadOnlyList<SignalClientInfo> Clients => _server.Clients;

    /// <inheritdoc/>
    public bool TryGetClient(ulong id, out SignalClientInfo? client) => _server.TryGetClient(id, out client);

    /// <inheritdoc/>
    public Task<TimeSpan> PingAsync(ulong id, CancellationToken cancellationToken = default) => _server.PingAsync(id, cancellationToken);

    /// <inheritdoc/>
    public Task<ResourceUsage> TopAsync(ulong id, CancellationToken cancellationToken = default) => _server.TopAsync(id, cancellationToken);

    /// <inheritdoc/>
    public Task<int> ShutdownAsync(ulong id, CancellationToken cancellationToken = default) => _server.ShutdownAsync(id, cancellationToken);

    /// <inheritdoc/>
    public event EventHandler<SignalClientInfo>? ClientRegistered;

    /// <inheritdoc/>
    public event EventHandler<SignalClientInfo>? ClientDisconnected;
}
