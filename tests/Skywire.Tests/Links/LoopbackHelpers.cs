using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Skywire.Core.Crypto;
using Microsoft.Extensions.Logging;
using Skywire.Core.DataPlane;
using Skywire.Core.Links;
using Skywire.TestKit;

namespace Skywire.Tests.Links;

/// <summary>
/// A node's data plane with its key: on 127.0.0.1 port 0 (a real socket), or on an in-memory bind when one is
/// given (TestKit's <see cref="InMemoryUdpNetwork"/>: no socket at all). Logs go to the logger factory when one is
/// given (a TestLog fails the test on an Error it was not told to expect).
/// </summary>
internal sealed class TestNode : IAsyncDisposable
{
    public TestNode(DataPlaneOptions? options = null, ILoggerFactory? log = null, IUdpBind? bind = null)
    {
        Key = KeyPair.Generate();
        Plane = new NodeDataPlane(Key, bind, options ?? Fast, log);
        EndPoint = Plane.Start(new IPEndPoint(IPAddress.Loopback, 0));
    }

    /// <summary>Short timers so tests finish quickly; generous enough for a loaded 2-core machine.</summary>
    public static DataPlaneOptions Fast { get; } = new()
    {
        HandshakeRetryInterval = TimeSpan.FromMilliseconds(200),
        HandshakeTimeout = TimeSpan.FromSeconds(10),
        ProbeInterval = TimeSpan.FromMilliseconds(100),
        DeadAfter = TimeSpan.FromSeconds(5),
        TickInterval = TimeSpan.FromMilliseconds(20),
    };

    public KeyPair Key { get; }

    public NodeDataPlane Plane { get; }

    public IPEndPoint EndPoint { get; }

    public async ValueTask DisposeAsync()
    {
        await Plane.DisposeAsync();
        Key.Dispose();
    }
}

internal static class Wait
{
    /// <summary>Polls <paramref name="condition"/> until true; fails after <paramref name="timeout"/> (an upper bound, not a sleep).</summary>
    public static async Task UntilAsync(Func<bool> condition, TimeSpan? timeout = null, string? what = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"timed out waiting for {what ?? "condition"}");
            }

            await Task.Delay(10, TestContext.Current.CancellationToken);
        }
    }
}

/// <summary>
/// A UDP hop between a client and a target that records every datagram both ways and can
/// tamper with or drop those going to the target. Stands for "the wire" next to a relay.
/// </summary>
internal sealed class RecordingProxy : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
    private readonly IPEndPoint _target;
    private readonly Thread _thread;
    private EndPoint? _client;
    private volatile bool _disposed;
    private Exception? _failure;

    public RecordingProxy(IPEndPoint target)
    {
        _target = target;
        _socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        EndPoint = (IPEndPoint)_socket.LocalEndPoint!;
        _thread = new Thread(Run) { IsBackground = true, Name = "test-proxy" };
        _thread.Start();
    }

    public IPEndPoint EndPoint { get; }

    public ConcurrentQueue<byte[]> Seen { get; } = new();

    /// <summary>Applied to datagrams going to the target; return null to drop.</summary>
    public Func<byte[], byte[]?>? Tamper { get; set; }

    /// <summary>Sends raw bytes to the target as if from the client.</summary>
    public void Inject(byte[] datagram) => _socket.SendTo(datagram, _target);

    /// <summary>Stops the proxy; throws if its thread did not end, or ended on an error of its own before.</summary>
    public void Dispose()
    {
        _disposed = true;
        _socket.Dispose();
        if (!_thread.Join(TimeSpan.FromSeconds(20)))
        {
            throw new InvalidOperationException("the proxy thread did not stop");
        }

        if (_failure is not null)
        {
            throw new InvalidOperationException("the proxy failed while the test ran", _failure);
        }
    }

    private void Run()
    {
        var buffer = new byte[65536];
        EndPoint from = new IPEndPoint(IPAddress.Any, 0);
        while (true)
        {
            int n;
            try
            {
                n = _socket.ReceiveFrom(buffer, ref from);
            }
            catch (SocketException ex) when (!_disposed && ex.SocketErrorCode == SocketError.ConnectionReset)
            {
                continue; // an ICMP error from a peer that went away (Windows): not the proxy's end
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                if (!_disposed)
                {
                    _failure = ex; // not the end Dispose asked for: reported there
                }

                return;
            }

            var datagram = buffer.AsSpan(0, n).ToArray();
            Seen.Enqueue(datagram);
            try
            {
                if (from.Equals(_target))
                {
                    if (_client is not null)
                    {
                        _socket.SendTo(datagram, _client);
                    }
                }
                else
                {
                    _client = from;
                    var outgoing = Tamper is { } tamper ? tamper(datagram) : datagram;
                    if (outgoing is not null)
                    {
                        _socket.SendTo(outgoing, _target);
                    }
                }
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                if (!_disposed)
                {
                    _failure = ex; // not the end Dispose asked for: reported there
                }

                return;
            }
        }
    }
}
