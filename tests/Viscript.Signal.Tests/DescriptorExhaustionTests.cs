using System.Net;
using System.Net.Sockets;
using Viscript.Signal.Internal;

namespace Viscript.Signal.Tests;

/// <summary>
/// Issue 12.3: a connection flood far beyond the descriptor limit neither aborts the server ("Out of memory.": at the
/// limit the runtime cannot start a thread) nor deafens it. The server runs in a child process under
/// <c>prlimit --nofile</c>, so that the limit is lowered for it alone.
/// </summary>
[Trait("Category", "E2E")]
public class DescriptorExhaustionTests
{
    private const int Limit = 256;

    [Fact]
    public async Task FloodBeyondTheDescriptorLimit_ServerStaysWithinIt_AndRegistersClientsAfterwards()
    {
        Assert.SkipWhen(SignalHostProcess.PrlimitPath is null, "prlimit (util-linux) is needed to lower the host's descriptor limit");
        await using var host = await SignalHostProcess.StartAsync(Limit);
        var flood = new List<Socket>();
        try
        {
            // Four times the limit, idle, in batches; attempts beyond the kernel's accept backlog may time out (not counted).
            for (var batch = 0; batch < 10; batch++)
            {
                var sockets = await Task.WhenAll(Enumerable.Range(0, 100).Select(_ => TryConnectAsync(host.EndPoint)));
                flood.AddRange(sockets.OfType<Socket>());
            }

            Assert.True(flood.Count > Limit, $"only {flood.Count} connections got through");
            await host.WaitForLineAsync(l => l.Contains("connection refused", StringComparison.Ordinal));
            var open = await host.OpenDescriptorsAsync();
            Assert.True(open <= Limit - (DescriptorBudget.Reserve / 2), $"{open} descriptors open of {Limit}: the server let connections take the reserve");
        }
        finally
        {
            foreach (var socket in flood)
            {
                socket.Dispose();
            }
        }

        // The flood is gone: a client registers and the server keeps serving. A real client, which reconnects: until the
        // server has seen every flood connection close (and drained the ones still queued), the cap may refuse it once.
        await using var client = SignalClient.Start(new SignalClientOptions
        {
            ServerAddress = host.EndPoint.ToString(),
            ClientId = 42,
            InitialReconnectDelay = TimeSpan.FromMilliseconds(100),
            MaxReconnectDelay = TimeSpan.FromSeconds(1),
            ExitOnUnhandledShutdown = false,
        });
        using var timeout = new CancellationTokenSource(TestServer.Deadline);
        await client.WaitForRegistrationAsync(timeout.Token);
        await host.WaitForLineAsync(l => l == "registered 42");
    }

    private static async Task<Socket?> TryConnectAsync(IPEndPoint endPoint)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        try
        {
            await socket.ConnectAsync(endPoint, timeout.Token);
            return socket;
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
            socket.Dispose();
            return null;
        }
    }
}
