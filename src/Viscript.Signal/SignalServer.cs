using System.Net;

namespace Viscript.Signal;

/// <summary>The viscript side of the signal protocol (stub; see SignalApi.Draft.cs).</summary>
public sealed class SignalServer : IAsyncDisposable
{
    public SignalServer(SignalServerOptions? options = null) => Options = options ?? SignalServerOptions.Default;

    public SignalServerOptions Options { get; }

    /// <summary>The bound address once started.</summary>
    public IPEndPoint LocalEndPoint => throw new NotImplementedException();

    /// <summary>Raised when a client registers (or re-registers after a reconnect).</summary>
    public event EventHandler<SignalClientInfo>? ClientRegistered;

    /// <summary>Raised when a registered client's connection ends.</summary>
    public event EventHandler<SignalClientInfo>? ClientDisconnected;

    /// <summary>Raised for every diagnostic the server wants an operator to see (bad frames, refused registrations).</summary>
    public event EventHandler<string>? Diagnostic;

    public Task StartAsync(CancellationToken cancellationToken = default) => throw new NotImplementedException();

    public IReadOnlyList<SignalClientInfo> Clients => throw new NotImplementedException();

    public bool TryGetClient(ulong id, out SignalClientInfo? client) => throw new NotImplementedException();

    /// <summary>Round trip of a signal PING (op 0x01).</summary>
    public Task<TimeSpan> PingAsync(ulong id, CancellationToken cancellationToken = default) => throw new NotImplementedException();

    /// <summary>Resource usage through TOP (op 0x00).</summary>
    public Task<ResourceUsage> TopAsync(ulong id, CancellationToken cancellationToken = default) => throw new NotImplementedException();

    /// <summary>Asks the client to shut down (op 0x02); returns the pid it reports.</summary>
    public Task<int> ShutdownAsync(ulong id, CancellationToken cancellationToken = default) => throw new NotImplementedException();

    public ValueTask DisposeAsync()
    {
        _ = ClientRegistered;
        _ = ClientDisconnected;
        _ = Diagnostic;
        return ValueTask.CompletedTask;
    }
}
