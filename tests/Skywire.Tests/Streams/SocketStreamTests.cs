using System.Net;
using System.Net.Sockets;
using Skywire.Core.Streams;

namespace Skywire.Tests.Streams;

/// <summary>
/// <see cref="SocketStream"/> over real loopback TCP: a reset is an error for every call that meets it, never an end
/// of stream, even when the kernel reported the reset's error to another call first; a FIN is an end of stream.
/// </summary>
public class SocketStreamTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(20);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<(Socket Peer, Socket Ours)> ConnectedPairAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var peer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await peer.ConnectAsync(listener.LocalEndPoint!, Ct);
        var ours = await listener.AcceptAsync(Ct);
        return (peer, ours);
    }

    /// <summary>
    /// The kernel reports a reset's error once, to the first call that asks; a relay writes and reads one socket at the
    /// same time, so its write can take the error and its read then got 0, a clean end of a broken stream (a SOCKS exit
    /// passed it on to its target as a FIN before the reset: issue 12.1).
    /// </summary>
    [Fact]
    public async Task PeerResets_AWriteTakesTheError_TheReadAfterItThrows_NotEndOfStream()
    {
        var (peer, ours) = await ConnectedPairAsync();
        await using var stream = new SocketStream(ours);
        peer.LingerState = new LingerOption(true, 0);
        peer.Close(); // RST
        Assert.True(ours.Poll(Limit, SelectMode.SelectRead), "the reset did not arrive");

        await Assert.ThrowsAsync<StreamAbortedException>(() => stream.WriteAsync(new byte[100], Ct).AsTask());
        await Assert.ThrowsAsync<StreamAbortedException>(() => stream.ReadAsync(new byte[16], Ct).AsTask());
    }

    [Fact]
    public async Task PeerFinishes_WhileWeStillWrite_EndOfStreamAfterTheBytes()
    {
        var (peer, ours) = await ConnectedPairAsync();
        using (peer)
        {
            await using var stream = new SocketStream(ours);
            await peer.SendAsync(new byte[] { 1, 2, 3 }, Ct);
            peer.Shutdown(SocketShutdown.Send); // FIN
            Assert.True(ours.Poll(Limit, SelectMode.SelectRead));

            await stream.WriteAsync(new byte[100], Ct); // the peer still reads: our direction is open
            var buffer = new byte[16];
            Assert.Equal(3, await stream.ReadAtLeastAsync(buffer, 3, cancellationToken: Ct));
            Assert.Equal(0, await stream.ReadAsync(buffer, Ct));
        }
    }

    [Fact]
    public async Task WeFinishFirst_ThenThePeerFinishes_EndOfStream()
    {
        var (peer, ours) = await ConnectedPairAsync();
        using (peer)
        {
            await using var stream = new SocketStream(ours);
            await stream.CompleteWritesAsync(Ct);
            var drained = new byte[16];
            Assert.Equal(0, await peer.ReceiveAsync(drained, Ct)); // our FIN arrived
            peer.Shutdown(SocketShutdown.Send); // then theirs: our socket is now closed (TIME_WAIT) by the kernel
            Assert.True(ours.Poll(Limit, SelectMode.SelectRead));

            Assert.Equal(0, await stream.ReadAsync(drained, Ct));
        }
    }

    /// <summary>
    /// An app gave up a transfer on a cancellation between two writes and left through <c>await using</c>: the dispose
    /// sent a FIN, and the peer read a clean end after the first write's bytes (the soak test, at its own stop: 0 of
    /// 1 395 625 bytes after the header, read as complete).
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AWriteThatDidNotFinish_Cancelled_DisposeResets_NotACleanEnd(bool triesToFinishFirst)
    {
        var (peer, ours) = await ConnectedPairAsync();
        using (peer)
        {
            var stream = new SocketStream(ours);
            await stream.WriteAsync(new byte[8], Ct);
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => stream.WriteAsync(new byte[1000], new CancellationToken(canceled: true)).AsTask());
            if (triesToFinishFirst)
            {
                // Finishing would pass the cut stream on as complete: it throws (and resets), as do later writes.
                await Assert.ThrowsAsync<IOException>(() => stream.CompleteWritesAsync(Ct).AsTask());
                await Assert.ThrowsAnyAsync<IOException>(() => stream.WriteAsync(new byte[1], Ct).AsTask());
            }

            await stream.DisposeAsync();

            Assert.Equal(8, await ReadUntilEndOrResetAsync(peer, expectReset: true));
        }
    }

    /// <summary>The same with the write cancelled while it waits for the peer to read (part of it went out).</summary>
    [Fact]
    public async Task AWriteThatDidNotFinish_CancelledWhileBlocked_DisposeResets_NotACleanEnd()
    {
        var (peer, ours) = await ConnectedPairAsync();
        using (peer)
        {
            var stream = new SocketStream(ours);
            using var cancel = new CancellationTokenSource();
            var write = stream.WriteAsync(new byte[64 * 1024 * 1024], cancel.Token).AsTask(); // far more than the socket buffers hold
            Assert.False(write.IsCompleted);
            await cancel.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => write);

            await stream.DisposeAsync();

            await ReadUntilEndOrResetAsync(peer, expectReset: true);
        }
    }

    /// <summary>Every write finished: disposing without finishing the writes first is still a clean end (as TCP's close).</summary>
    [Fact]
    public async Task EveryWriteFinished_DisposeIsACleanEnd()
    {
        var (peer, ours) = await ConnectedPairAsync();
        using (peer)
        {
            var stream = new SocketStream(ours);
            await stream.WriteAsync(new byte[8], Ct);
            await stream.DisposeAsync();

            Assert.Equal(8, await ReadUntilEndOrResetAsync(peer, expectReset: false));
        }
    }

    /// <summary>Reads <paramref name="peer"/> until end of stream or a reset, whichever <paramref name="expectReset"/> says must come; returns the bytes read.</summary>
    private static async Task<long> ReadUntilEndOrResetAsync(Socket peer, bool expectReset)
    {
        var buffer = new byte[256 * 1024];
        long total = 0;
        try
        {
            int n;
            while ((n = await peer.ReceiveAsync(buffer, Ct).AsTask().WaitAsync(Limit, Ct)) > 0)
            {
                total += n;
            }
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
        {
            Assert.True(expectReset, $"reset after {total} bytes where a clean end was expected");
            return total;
        }

        Assert.False(expectReset, $"a clean end after {total} bytes: the cut stream passed as complete");
        return total;
    }
}
