using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Shared.Hosting;
using Skywire.Core.Channels;

namespace Skywire.Hosting;

/// <summary>
/// Kestrel for skywire's HTTP listeners (<c>--metrics</c> of node, manager and messenger, <c>chat web</c>, the demo's
/// page) on the guarded accept loop (<see cref="GuardedListenerFactory"/>, shared with viscript's control listener:
/// issue 12.3), with at most <see cref="ListenerLimits.MaxConnections"/> connections (per source
/// <see cref="ListenerLimits.MaxConnectionsPerSource"/>), no accept while 12 or fewer descriptors are free
/// (<see cref="TcpConnectionHost.DescriptorsFree"/>: the runtime needs them to start threads), and Kestrel's deadlines
/// for idle and slow-drip connections (<see cref="Use"/>). A flood of idle connections to a node's or manager's
/// <c>--metrics</c> port took the process down before ("Out of memory.").
/// </summary>
internal static class GuardedKestrelTransport
{
    /// <summary>
    /// Descriptors left free: no accept while fewer are. Smaller than the TCP listeners' reserve (32), so that a
    /// metrics port still answers when a flood holds the node's own listeners at their cap; enough for the runtime to
    /// start threads.
    /// </summary>
    private const int DescriptorReserve = 12;

    /// <summary>Connections per HTTP listener by default: a scraper or a browser needs a few.</summary>
    public static ListenerLimits DefaultLimits { get; } = new() { MaxConnections = 16, MaxConnectionsPerSource = 16 };

    /// <summary>Uses the guarded listener and HTTP/1.1 deadlines (10 s for a request head, 30 s idle) on <paramref name="builder"/>.</summary>
    public static void Use(WebApplicationBuilder builder, ListenerLimits? limits = null, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var l = limits ?? DefaultLimits;
        var factory = new GuardedListenerFactory(
            new GuardedListenerOptions("HTTP listener", "Skywire.Hosting.HttpListener", FirstEventId: 2030, l.MaxConnections, l.MaxConnectionsPerSource)
            {
                DescriptorsFree = TcpConnectionHost.DescriptorsFree,
                DescriptorReserve = DescriptorReserve,
                AcceptRetryDelay = l.AcceptRetryDelay,
                MaxAcceptRetryDelay = l.MaxAcceptRetryDelay,
            },
            loggerFactory ?? NullLoggerFactory.Instance);
        builder.Services.RemoveAll<IConnectionListenerFactory>();
        builder.Services.AddSingleton<IConnectionListenerFactory>(factory);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(10);
            k.Limits.KeepAliveTimeout = TimeSpan.FromSeconds(30);
            k.Limits.MinRequestBodyDataRate = new MinDataRate(240, TimeSpan.FromSeconds(5));
            k.ConfigureEndpointDefaults(e => e.Protocols = HttpProtocols.Http1);
        });
    }

    /// <summary>
    /// One complete request to <paramref name="endPoint"/> over a plain socket (no HttpClient: nothing more to load), so
    /// that the code a request runs is loaded (assemblies take descriptors) before any flood can take them.
    /// </summary>
    public static async Task WarmUpAsync(IPEndPoint endPoint, string path, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        try
        {
            using var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            var target = endPoint.Address.Equals(IPAddress.Any) ? new IPEndPoint(IPAddress.Loopback, endPoint.Port)
                : endPoint.Address.Equals(IPAddress.IPv6Any) ? new IPEndPoint(IPAddress.IPv6Loopback, endPoint.Port) : endPoint;
            await socket.ConnectAsync(target, timeout.Token);
            await socket.SendAsync(System.Text.Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"), timeout.Token);
            var buffer = new byte[16 * 1024];
            while (await socket.ReceiveAsync(buffer, timeout.Token) > 0)
            {
            }
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
            // Only a warm-up: the listener serves without it.
        }
    }
}
