using System.Text;
using Skywire.Core.Channels;
using Skywire.Core.Crypto;
using Skywire.Core.Messenger;
using Skywire.Protocol.Messenger;
using Skywire.TestKit;

namespace Skywire.IntegrationTests.Messenger;

/// <summary>MessengerClient with Reconnect: connections killed in the middle (a TCP relay that resets them) come back by themselves.</summary>
public sealed class MessengerReconnectTests
{
    [Fact]
    public async Task KilledConnection_ReconnectsRegistersAgainAndReoffers_MessagesFlowOnTheSameChannels()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var h = new MessengerHarness();
        using var relay = new TcpFaultRelay(h.Server.LocalEndPoint);
        var key = KeyPair.Generate();
        var options = h.ClientOptions() with { EndPoint = relay.ListenEndPoint, Reconnect = true, ReconnectDelay = TimeSpan.FromMilliseconds(50) };
        await using var client = await MessengerClient.ConnectAsync(options, key, cancellationToken: ct).WaitAsync(MessengerHarness.Timeout, ct);
        var peer = await h.ConnectAsync();
        await client.OfferServiceAsync(new ServiceOffer { Name = "svc", Type = "test" }, cancellationToken: ct);

        for (var round = 1; round <= 2; round++)
        {
            // The directory forgets the offer (as an expiry would), then the connection dies.
            h.Server.Directory.Withdraw(key.Public, []);
            var reconnected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            void OnReconnected(object? sender, EventArgs e) => reconnected.TrySetResult();
            client.Reconnected += OnReconnected;
            Assert.Equal(1, relay.KillAll());
            await reconnected.Task.WaitAsync(MessengerHarness.Timeout, ct);
            client.Reconnected -= OnReconnected;

            Assert.Equal(round, client.Reconnects);
            Assert.True(client.IsConnected);
            Assert.False(client.Closed.IsCompleted);
            Assert.True(h.Server.IsOnline(key.Public));

            // Re-offered on reconnection, and online again.
            var found = await peer.QueryServicesAsync(new ServiceQuery { Key = key.Public.ToString() }, ct);
            var entry = Assert.Single(found.Entries);
            Assert.Equal("svc", entry.Name);
            Assert.True(entry.Online);

            // Messages both ways, on the same Messages channel as before the break.
            await peer.SendAsync(key.Public, "to client " + round, ct);
            var message = await client.Messages.ReadAsync(ct).AsTask().WaitAsync(MessengerHarness.Timeout, ct);
            Assert.Equal("to client " + round, Encoding.UTF8.GetString(message.Data.Span));
            await client.SendAsync(peer.Key, "from client " + round, ct);
            Assert.Equal("from client " + round, MessengerHarness.Text(await MessengerHarness.ReceiveAsync(peer)));
        }

        Assert.Equal(3, relay.Accepted);
        await client.DisposeAsync();
        Assert.Equal(ConnectionCloseReason.LocalClosed, await client.Closed.WaitAsync(MessengerHarness.Timeout, ct));
    }

    [Fact]
    public async Task StreamOpenWhenTheConnectionDies_EndsWithAnError_NewStreamsWorkAfterReconnecting()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var h = new MessengerHarness();
        using var relay = new TcpFaultRelay(h.Server.LocalEndPoint);
        var options = h.ClientOptions() with { EndPoint = relay.ListenEndPoint, Reconnect = true, ReconnectDelay = TimeSpan.FromMilliseconds(50) };
        await using var client = await MessengerClient.ConnectAsync(options, KeyPair.Generate(), cancellationToken: ct).WaitAsync(MessengerHarness.Timeout, ct);
        var peer = await h.ConnectAsync();

        await using var before = await client.OpenStreamAsync(peer.Key, "x"u8.ToArray(), ct);
        await using var accepted = await peer.AcceptStreamAsync(ct).AsTask().WaitAsync(MessengerHarness.Timeout, ct);
        var reconnected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        client.Reconnected += (_, _) => reconnected.TrySetResult();
        relay.KillAll();
        await Assert.ThrowsAsync<IOException>(async () => await before.ReadAsync(new byte[1], ct).AsTask().WaitAsync(MessengerHarness.Timeout, ct));
        await reconnected.Task.WaitAsync(MessengerHarness.Timeout, ct);

        await using var after = await client.OpenStreamAsync(peer.Key, "y"u8.ToArray(), ct);
        await using var acceptedAfter = await peer.AcceptStreamAsync(ct).AsTask().WaitAsync(MessengerHarness.Timeout, ct);
        await after.WriteAsync("hello"u8.ToArray(), ct);
        await after.CompleteWritesAsync(ct);
        Assert.Equal("hello", Encoding.UTF8.GetString(await MessengerStreamTests.ReadToEndAsync(acceptedAfter)));
    }

    [Fact]
    public async Task WithoutReconnect_AKilledConnectionClosesTheClient()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var h = new MessengerHarness();
        using var relay = new TcpFaultRelay(h.Server.LocalEndPoint);
        await using var client = await MessengerClient.ConnectAsync(h.ClientOptions() with { EndPoint = relay.ListenEndPoint }, KeyPair.Generate(), cancellationToken: ct).WaitAsync(MessengerHarness.Timeout, ct);
        relay.KillAll();
        await client.Closed.WaitAsync(MessengerHarness.Timeout, ct);
        await client.Messages.Completion.WaitAsync(MessengerHarness.Timeout, ct);
        Assert.False(client.IsConnected);
        Assert.Equal(1, relay.Accepted);
    }
}
