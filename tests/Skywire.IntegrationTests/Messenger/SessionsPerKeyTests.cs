using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Protocol.Messenger;

namespace Skywire.IntegrationTests.Messenger;

/// <summary>
/// Issue 13.5: one key may hold several authenticated connections (listen in one terminal, send from another; a
/// laptop and a phone): each live connection receives the key's messages, offline storage is unchanged, and every
/// connection must prove the key.
/// </summary>
public sealed class SessionsPerKeyTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task SecondConnectionOfAKey_IsAccepted_AndEveryConnectionReceivesTheKeysMessages()
    {
        await using var h = new MessengerHarness();
        using var key = KeyPair.Generate();
        var listening = await h.ConnectAsync(key);
        var sending = await h.ConnectAsync(key); // before issue 13: Conflict, "this key is already connected"
        var bob = await h.ConnectAsync();

        await sending.SendAsync(bob.Key, "hi bob", Ct);
        var got = await MessengerHarness.ReceiveAsync(bob);
        Assert.Equal(key.Public, got.From);
        Assert.Equal("hi bob", MessengerHarness.Text(got));

        await bob.SendAsync(key.Public, "hi both", Ct);
        Assert.Equal("hi both", MessengerHarness.Text(await MessengerHarness.ReceiveAsync(listening)));
        Assert.Equal("hi both", MessengerHarness.Text(await MessengerHarness.ReceiveAsync(sending)));
        Assert.Equal(3, h.Server.RegisteredCount);

        // One connection leaves: the other still gets everything, and the key is still online (nothing is stored).
        await sending.DisposeAsync();
        await bob.SendAsync(key.Public, "still here", Ct);
        Assert.Equal("still here", MessengerHarness.Text(await MessengerHarness.ReceiveAsync(listening)));
        Assert.True(h.Server.IsOnline(key.Public));
    }

    [Fact]
    public async Task OfflineKey_MessagesAreStored_AndGoToTheFirstConnectionThatComes()
    {
        await using var h = new MessengerHarness();
        using var key = KeyPair.Generate();
        var bob = await h.ConnectAsync();
        await bob.SendAsync(key.Public, "while away", Ct);
        await bob.PingAsync(Ct);

        var first = await h.ConnectAsync(key);
        var stored = await MessengerHarness.ReceiveAsync(first);
        Assert.True(stored.WasQueued);
        Assert.Equal("while away", MessengerHarness.Text(stored));

        var second = await h.ConnectAsync(key);
        await bob.SendAsync(key.Public, "live", Ct);
        Assert.Equal("live", MessengerHarness.Text(await MessengerHarness.ReceiveAsync(second)));
        var next = await MessengerHarness.ReceiveAsync(first);
        Assert.False(next.WasQueued);
        Assert.Equal("live", MessengerHarness.Text(next));
    }

    [Fact]
    public async Task ConnectionThatDoesNotProveTheKey_IsRefused_AndTheHoldersKeepIt()
    {
        await using var h = new MessengerHarness();
        using var key = KeyPair.Generate();
        var holder = await h.ConnectAsync(key);

        // The handshake proves another key than the hello claims: refused, and nothing reaches the holder's key.
        using var impostor = KeyPair.Generate();
        await using var raw = await RawMessengerPeer.ConnectAsync(h.Server.LocalEndPoint);
        using var local = Secp256k1Dh.FromKeyPair(impostor);
        await raw.HandshakeAsync(local, h.Server.Key);
        Assert.Equal((byte)MessengerOpcode.Error | 0x80, await raw.HelloAsync(key));
        Assert.Equal(1, h.Server.RegisteredCount);

        var bob = await h.ConnectAsync();
        await bob.SendAsync(key.Public, "only for the key", Ct);
        Assert.Equal("only for the key", MessengerHarness.Text(await MessengerHarness.ReceiveAsync(holder)));
    }
}
