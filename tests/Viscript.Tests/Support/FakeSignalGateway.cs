using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Viscript.Core.Supervision;
using Viscript.Signal;

namespace Viscript.Tests.Support;

/// <summary>In-memory signal gateway: tests decide who registers and how calls answer.</summary>
public sealed class FakeSignalGateway : ISignalGateway
{
    private readonly ConcurrentDictionary<ulong, SignalClientInfo> _clients = new();

    public string? ClientAddress { get; set; } = "127.0.0.1:1";

    public IReadOnlyList<SignalClientInfo> Clients => _clients.Values.ToList();

    public Func<ulong, Task<TimeSpan>> Ping { get; set; } = _ => Task.FromResult(TimeSpan.FromMilliseconds(1.5));

    public Func<ulong, Task<int>> Shutdown { get; set; } = _ => Task.FromResult(4242);

    public List<ulong> ShutdownCalls { get; } = [];

    public bool TryGetClient(ulong id, out SignalClientInfo? client) => _clients.TryGetValue(id, out client);

    public SignalClientInfo Register(ulong id, string remote = "127.0.0.1:50000")
    {
        var info = new SignalClientInfo(id, IPEndPoint.Parse(remote), DateTimeOffset.UtcNow, IPEndPoint.Parse(remote).Address.Equals(IPAddress.Loopback));
        _clients[id] = info;
        ClientRegistered?.Invoke(this, info);
        return info;
    }

    public void Disconnect(ulong id)
    {
        if (_clients.TryRemove(id, out var info))
        {
            ClientDisconnected?.Invoke(this, info);
        }
    }

    public Task<TimeSpan> PingAsync(ulong id, CancellationToken cancellationToken = default) =>
        _clients.ContainsKey(id) ? Ping(id) : throw new SignalException(SignalErrorKind.NotRegistered, "not registered");

    public Task<ResourceUsage> TopAsync(ulong id, CancellationToken cancellationToken = default)
    {
        if (!_clients.ContainsKey(id))
        {
            throw new SignalException(SignalErrorKind.NotRegistered, "not registered");
        }
        using var doc = JsonDocument.Parse("{\"HeapAlloc\":1}");
        return Task.FromResult(new ResourceUsage { Raw = doc.RootElement.Clone(), HeapAlloc = 1, HeapSys = 2, HeapIdle = 3, HeapInuse = 4, StackSys = 5, StackInuse = 6 });
    }

    public Task<int> ShutdownAsync(ulong id, CancellationToken cancellationToken = default)
    {
        if (!_clients.ContainsKey(id))
        {
            throw new SignalException(SignalErrorKind.NotRegistered, "not registered");
        }
        lock (ShutdownCalls)
        {
            ShutdownCalls.Add(id);
        }
        return Shutdown(id);
    }

    public event EventHandler<SignalClientInfo>? ClientRegistered;

    public event EventHandler<SignalClientInfo>? ClientDisconnected;
}
