using System.Threading.Channels;
using Skywire.Apps.Chat;
using Skywire.IntegrationTests.Mesh;

namespace Skywire.IntegrationTests.Chat;

/// <summary>Chat between apps beside two nodes, across a 2-hop route of an in-process mesh.</summary>
public sealed class NodeChatTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    // This test used to hang for 60 s about once in thirty runs under load: the node's app API took a spurious
    // zero-byte-read wake-up for the listener closing its pending accept (AppApiServer.WatchForCloseAsync).
    [Fact]
    public async Task Send_AcrossTwoHops_ArrivesOnce_WithTheSenderNodeKey()
    {
        await using var mesh = MeshHarness.Start();
        var nodes = await mesh.AddNodesAsync(3);
        await mesh.LinkAsync(nodes[0], nodes[1]);
        await mesh.LinkAsync(nodes[1], nodes[2]);

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var inbox = Channel.CreateUnbounded<NodeChatMessage>();
        var ready = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var listening = NodeChat.ListenAsync(nodes[2].AppsEndPoint, nodes[2].AppToken, "chat",
            m => inbox.Writer.WriteAsync(m, stop.Token), ready.SetResult, stop.Token);
        var address = await ready.Task.WaitAsync(MeshHarness.Limit, Ct);
        Assert.Equal($"{nodes[2].NodeKey}/chat", address);

        const string text = "héllo across the mesh\nsecond line";
        await NodeChat.SendAsync(nodes[0].AppsEndPoint, nodes[0].AppToken, "me", address, text, Ct).WaitAsync(MeshHarness.Limit, Ct);
        await NodeChat.SendAsync(nodes[0].AppsEndPoint, nodes[0].AppToken, "me", address, "two", Ct).WaitAsync(MeshHarness.Limit, Ct);

        var first = await inbox.Reader.ReadAsync(Ct).AsTask().WaitAsync(MeshHarness.Limit, Ct);
        var second = await inbox.Reader.ReadAsync(Ct).AsTask().WaitAsync(MeshHarness.Limit, Ct);
        Assert.Equal(nodes[0].NodeKey, first.FromNode);
        Assert.Equal(text, first.Text);
        Assert.Equal("two", second.Text);
        Assert.False(inbox.Reader.TryRead(out _));

        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => listening);
    }

    [Fact]
    public async Task Send_ToAnAppThatIsNotThere_FailsWithAClearError()
    {
        await using var mesh = MeshHarness.Start();
        var nodes = await mesh.AddNodesAsync(2);
        await mesh.LinkAsync(nodes[0], nodes[1]);

        var error = await Assert.ThrowsAnyAsync<Exception>(() =>
            NodeChat.SendAsync(nodes[0].AppsEndPoint, nodes[0].AppToken, "me", $"{nodes[1].NodeKey}/nobody", "hi", Ct).WaitAsync(MeshHarness.Limit, Ct));
        Assert.IsNotType<TimeoutException>(error);
    }

    [Theory]
    [InlineData("no-slash")]
    [InlineData("/app")]
    [InlineData("key/")]
    public async Task Send_BadTarget_IsRefusedBeforeConnecting(string target)
    {
        await Assert.ThrowsAsync<FormatException>(() =>
            NodeChat.SendAsync(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 9), "token", "me", target, "hi", Ct));
    }

    [Fact]
    public async Task Send_TooLong_IsRefused()
    {
        var text = new string('x', NodeChat.MaxMessageBytes + 1);
        await Assert.ThrowsAsync<ArgumentException>(() =>
            NodeChat.SendAsync(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 9), "token", "me", "k/chat", text, Ct));
    }
}
