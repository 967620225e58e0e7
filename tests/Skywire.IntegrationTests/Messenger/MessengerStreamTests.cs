using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Skywire.Core.Crypto;
using Skywire.Core.Messenger;
using Skywire.Protocol.Messenger;

namespace Skywire.IntegrationTests.Messenger;

public sealed class MessengerStreamTests
{
    [Fact]
    public async Task RelayedStream_Carries10MegabytesEachWay_ByteExact_AndTheRelaySeesNoPlaintext()
    {
        await using var h = new MessengerHarness();
        var sampled = new ConcurrentQueue<byte[]>();
        h.Server.Tap = (_, op, payload) =>
        {
            if (op == (byte)MessengerOpcode.StreamData && sampled.Count < 50)
            {
                sampled.Enqueue(payload.ToArray());
            }
        };
        var alice = await h.ConnectAsync();
        var bob = await h.ConnectAsync();
        var ct = TestContext.Current.CancellationToken;

        var upload = RandomNumberGenerator.GetBytes(10 * 1024 * 1024);
        var download = RandomNumberGenerator.GetBytes(10 * 1024 * 1024);
        var acceptTask = bob.AcceptStreamAsync(ct).AsTask();
        await using var a = await alice.OpenStreamAsync(bob.Key, "echo-app"u8.ToArray(), ct);
        await using var b = await acceptTask.WaitAsync(MessengerHarness.Timeout, ct);
        Assert.Equal("echo-app", Encoding.UTF8.GetString(b.OpenData.Span));
        Assert.Equal(alice.Key, b.RemoteKey);
        Assert.Equal(bob.Key, a.RemoteKey);

        async Task WriteAllAsync(MessengerStream s, byte[] data)
        {
            var random = new Random(1);
            for (var offset = 0; offset < data.Length;)
            {
                var n = Math.Min(data.Length - offset, random.Next(1, 100_000));
                await s.WriteAsync(data.AsMemory(offset, n), ct);
                offset += n;
            }

            await s.CompleteWritesAsync(ct);
        }

        var aWrites = Task.Run(() => WriteAllAsync(a, upload), ct);
        var bWrites = Task.Run(() => WriteAllAsync(b, download), ct);
        var atB = Task.Run(() => ReadToEndAsync(b), ct);
        var atA = Task.Run(() => ReadToEndAsync(a), ct);
        await Task.WhenAll(aWrites, bWrites, atA, atB).WaitAsync(TimeSpan.FromSeconds(120), ct);
        var gotAtB = await atB;
        var gotAtA = await atA;
        Assert.True(upload.AsSpan().SequenceEqual(gotAtB));
        Assert.True(download.AsSpan().SequenceEqual(gotAtA));

        Assert.NotEmpty(sampled);
        var upHead = upload[..16];
        var downHead = download[..16];
        Assert.All(sampled, frame => Assert.True(frame.AsSpan().IndexOf(upHead) < 0 && frame.AsSpan().IndexOf(downHead) < 0));
    }

    [Fact]
    public async Task StreamToAKeyThatIsNotConnected_FailsWithNotFound()
    {
        await using var h = new MessengerHarness();
        var alice = await h.ConnectAsync();
        var ex = await Assert.ThrowsAsync<MessengerException>(() => alice.OpenStreamAsync(KeyPair.Generate().Public, default, TestContext.Current.CancellationToken));
        Assert.Equal(MessengerErrorCode.NotFound, ex.Code);
    }

    [Fact]
    public async Task PeerDisconnecting_FailsTheOtherEndsRead_NotWithACleanEnd()
    {
        await using var h = new MessengerHarness();
        var alice = await h.ConnectAsync();
        var bob = await MessengerClient.ConnectAsync(h.ClientOptions(), KeyPair.Generate(), cancellationToken: TestContext.Current.CancellationToken);
        var accept = bob.AcceptStreamAsync(TestContext.Current.CancellationToken).AsTask();
        var a = await alice.OpenStreamAsync(bob.Key, default, TestContext.Current.CancellationToken);
        var b = await accept.WaitAsync(MessengerHarness.Timeout, TestContext.Current.CancellationToken);
        await b.WriteAsync("partial"u8.ToArray(), TestContext.Current.CancellationToken);
        var buffer = new byte[7];
        await a.ReadExactlyAsync(buffer, TestContext.Current.CancellationToken);
        Assert.Equal("partial", Encoding.UTF8.GetString(buffer));

        await bob.DisposeAsync();
        await Assert.ThrowsAsync<IOException>(async () => await a.ReadAsync(buffer, TestContext.Current.CancellationToken).AsTask().WaitAsync(MessengerHarness.Timeout, TestContext.Current.CancellationToken));
        await Assert.ThrowsAsync<IOException>(async () => await a.WriteAsync(buffer, TestContext.Current.CancellationToken));
    }

    /// <summary>
    /// The writer gives up between two writes on a cancellation and leaves through <c>await using</c> (having tried to
    /// finish its writes, or not): the peer reads an error; disposing used to send the end-of-stream record (a clean end).
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task WriteCancelled_ThenDisposed_PeerReadsAnError_NotACleanEnd(bool triesToFinishFirst)
    {
        await using var h = new MessengerHarness();
        var alice = await h.ConnectAsync();
        var bob = await h.ConnectAsync();
        var ct = TestContext.Current.CancellationToken;
        var accept = bob.AcceptStreamAsync(ct).AsTask();
        var a = await alice.OpenStreamAsync(bob.Key, default, ct);
        await using var b = await accept.WaitAsync(MessengerHarness.Timeout, ct);
        await a.WriteAsync("partial"u8.ToArray(), ct);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => a.WriteAsync(new byte[1000], new CancellationToken(canceled: true)).AsTask());
        if (triesToFinishFirst)
        {
            await Assert.ThrowsAsync<IOException>(() => a.CompleteWritesAsync(ct).AsTask());
        }

        await a.DisposeAsync();

        await Assert.ThrowsAsync<IOException>(() => ReadToEndAsync(b).WaitAsync(MessengerHarness.Timeout, ct));
    }

    [Fact]
    public async Task SeveralStreamsBetweenTheSamePair_AreIndependent()
    {
        await using var h = new MessengerHarness();
        var alice = await h.ConnectAsync();
        var bob = await h.ConnectAsync();
        var ct = TestContext.Current.CancellationToken;
        var accepted = Task.Run(async () =>
        {
            for (var i = 0; i < 5; i++)
            {
                var s = await bob.AcceptStreamAsync(ct);
                _ = Task.Run(async () =>
                {
                    await using (s)
                    {
                        var data = await ReadToEndAsync(s);
                        await s.WriteAsync(data, ct);
                        await s.CompleteWritesAsync(ct);
                    }
                }, ct);
            }
        }, ct);

        var results = await Task.WhenAll(Enumerable.Range(0, 5).Select(async i =>
        {
            await using var s = await alice.OpenStreamAsync(bob.Key, default, ct);
            var payload = Encoding.UTF8.GetBytes(new string((char)('a' + i), 50_000 + i));
            await s.WriteAsync(payload, ct);
            await s.CompleteWritesAsync(ct);
            return (payload, echoed: await ReadToEndAsync(s));
        })).WaitAsync(MessengerHarness.Timeout, ct);
        foreach (var (payload, echoed) in results)
        {
            Assert.Equal(payload, echoed);
        }

        await accepted;
    }

    internal static async Task<byte[]> ReadToEndAsync(Stream s)
    {
        using var all = new MemoryStream();
        var buffer = new byte[64 * 1024];
        int n;
        while ((n = await s.ReadAsync(buffer)) > 0)
        {
            all.Write(buffer, 0, n);
        }

        return all.ToArray();
    }
}
