using System.Net;
using System.Text;
using Skywire.Core.Crypto;
using Skywire.Core.Messenger;

namespace Skywire.IntegrationTests.Messenger;

public sealed class MessengerPeeringTests
{
    [Fact]
    public async Task TwoPeerings_OpenAStreamByKey_AndReconnectAfterTheMessengerRestarts()
    {
        var ct = TestContext.Current.CancellationToken;
        var serverKey = KeyPair.Generate();
        var server = new MessengerServer(serverKey);
        server.Start(new IPEndPoint(IPAddress.Loopback, 0));
        var endPoint = server.LocalEndPoint;
        var options = new MessengerClientOptions { EndPoint = endPoint, MessengerKey = serverKey.Public };
        var incoming = System.Threading.Channels.Channel.CreateUnbounded<MessengerStream>();
        var nodeA = KeyPair.Generate();
        var nodeB = KeyPair.Generate();
        await using var a = new MessengerPeering(options, nodeA, _ => false) { ReconnectDelay = TimeSpan.FromMilliseconds(50) };
        await using var b = new MessengerPeering(options, nodeB, s => incoming.Writer.TryWrite(s)) { ReconnectDelay = TimeSpan.FromMilliseconds(50) };
        a.Start();
        b.Start();
        await Task.WhenAll(a.Connected, b.Connected).WaitAsync(MessengerHarness.Timeout, ct);

        await RoundTripAsync(a, nodeB, incoming.Reader, "first", ct);

        await server.DisposeAsync();
        await MessengerRelayTests.WaitUntilAsync(() => !a.IsConnected && !b.IsConnected);
        await Assert.ThrowsAsync<MessengerException>(() => a.OpenStreamAsync(nodeB.Public, default, ct));

        await using var again = new MessengerServer(serverKey);
        again.Start(endPoint);
        await MessengerRelayTests.WaitUntilAsync(() => a.IsConnected && b.IsConnected && again.RegisteredCount == 2);
        await RoundTripAsync(a, nodeB, incoming.Reader, "after restart", ct);
    }

    [Fact]
    public async Task RefusedIncomingStream_IsAbortedAtTheOpener()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var h = new MessengerHarness();
        var nodeB = KeyPair.Generate();
        await using var b = new MessengerPeering(h.ClientOptions(), nodeB, _ => false);
        b.Start();
        await b.Connected.WaitAsync(MessengerHarness.Timeout, ct);
        var a = await h.ConnectAsync();
        await using var s = await a.OpenStreamAsync(nodeB.Public, "nobody"u8.ToArray(), ct);
        await Assert.ThrowsAsync<IOException>(async () => await s.ReadAsync(new byte[1], ct).AsTask().WaitAsync(MessengerHarness.Timeout, ct));
    }

    private static async Task RoundTripAsync(MessengerPeering a, KeyPair nodeB, System.Threading.Channels.ChannelReader<MessengerStream> incoming, string text, CancellationToken ct)
    {
        await using var outbound = await a.OpenStreamAsync(nodeB.Public, Encoding.UTF8.GetBytes("app:" + text), ct);
        await using var inbound = await incoming.ReadAsync(ct).AsTask().WaitAsync(MessengerHarness.Timeout, ct);
        Assert.Equal("app:" + text, Encoding.UTF8.GetString(inbound.OpenData.Span));
        await outbound.WriteAsync(Encoding.UTF8.GetBytes(text), ct);
        await outbound.CompleteWritesAsync(ct);
        Assert.Equal(text, Encoding.UTF8.GetString(await MessengerStreamTests.ReadToEndAsync(inbound)));
    }
}
