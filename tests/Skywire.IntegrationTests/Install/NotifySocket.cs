using System.Net.Sockets;
using System.Text;

namespace Skywire.IntegrationTests.Install;

/// <summary>
/// What systemd is to a <c>Type=notify</c> service: a Unix datagram socket whose path goes in <c>NOTIFY_SOCKET</c>;
/// each datagram is one notification (<c>READY=1\nSTATUS=…</c>).
/// </summary>
internal sealed class NotifySocket : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);

    public NotifySocket(string dir)
    {
        Path = System.IO.Path.Combine(dir, "notify.sock");
        _socket.Bind(new UnixDomainSocketEndPoint(Path));
    }

    /// <summary>The value for NOTIFY_SOCKET.</summary>
    public string Path { get; }

    /// <summary>The next notification, within <paramref name="limit"/>.</summary>
    public async Task<string> ReceiveAsync(TimeSpan limit)
    {
        var buffer = new byte[4096];
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        cts.CancelAfter(limit);
        var n = await _socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
        return Encoding.UTF8.GetString(buffer, 0, n);
    }

    public void Dispose() => _socket.Dispose();
}
