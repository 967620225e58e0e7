using Skywire.Core.Forwarding;
using Skywire.Core.Links;
using Skywire.Core.Sessions;
using Skywire.Tests.Links;
using Skywire.TestKit.Logging;

namespace Skywire.Tests.Forwarding;

/// <summary>A session that moves from relay B to relay D keeps its keys and keeps delivering.</summary>
public class RerouteTests
{
    [Fact]
    public async Task Session_MovesToAlternatePath_WithoutNewHandshake()
    {
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        await using var a = new TestNode(log: log);
        await using var b = new TestNode(log: log);
        await using var c = new TestNode(log: log);
        await using var d = new TestNode(log: log);
        var ct = TestContext.Current.CancellationToken;
        await a.Plane.OpenLinkAsync(b.Key.Public, b.EndPoint, ct);
        await b.Plane.OpenLinkAsync(c.Key.Public, c.EndPoint, ct);
        await a.Plane.OpenLinkAsync(d.Key.Public, d.EndPoint, ct);
        await d.Plane.OpenLinkAsync(c.Key.Public, c.EndPoint, ct);
        await Wait.UntilAsync(
            () => b.Plane.GetLink(a.Key.Public)?.State == LinkState.Up && c.Plane.GetLink(b.Key.Public)?.State == LinkState.Up
                && d.Plane.GetLink(a.Key.Public)?.State == LinkState.Up && c.Plane.GetLink(d.Key.Public)?.State == LinkState.Up,
            what: "four links up");

        var life = TimeSpan.FromMinutes(1);
        b.Plane.InstallRule(new RouteRule(a.Key.Public, 10, c.Key.Public, 11, life));
        b.Plane.InstallRule(new RouteRule(c.Key.Public, 12, a.Key.Public, 13, life));
        d.Plane.InstallRule(new RouteRule(a.Key.Public, 20, c.Key.Public, 21, life));
        d.Plane.InstallRule(new RouteRule(c.Key.Public, 22, a.Key.Public, 23, life));

        var sc = c.Plane.BindSession(new SessionRoute(5, a.Key.Public, false, b.Key.Public, 12, b.Key.Public, 11));
        var sa = await a.Plane.OpenSessionAsync(new SessionRoute(5, c.Key.Public, true, b.Key.Public, 10, b.Key.Public, 13), ct);
        await sc.Established.WaitAsync(TimeSpan.FromSeconds(20), ct);
        var got = 0;
        sc.Receiver = _ => Interlocked.Increment(ref got);
        await SendUntilAsync(sa, () => Volatile.Read(ref got) >= 1);
        var viaB = b.Plane.GetRules().Single(r => r.InRoute == 10).Packets;

        // The manager re-routes through D: both ends get new labels (same session id, same keys).
        a.Plane.UpdateSessionRoute(new SessionRoute(5, c.Key.Public, true, d.Key.Public, 20, d.Key.Public, 23));
        c.Plane.BindSession(new SessionRoute(5, a.Key.Public, false, d.Key.Public, 22, d.Key.Public, 21));
        var before = Volatile.Read(ref got);
        await SendUntilAsync(sa, () => Volatile.Read(ref got) > before);
        Assert.True(d.Plane.GetRules().Single(r => r.InRoute == 20).Packets >= 1);
        Assert.Equal(viaB, b.Plane.GetRules().Single(r => r.InRoute == 10).Packets);

        // And back from C to A over D.
        var back = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        sa.Receiver = _ => back.TrySetResult();
        for (var i = 0; i < 50 && !back.Task.IsCompleted; i++)
        {
            sc.Send([1]);
            await Task.WhenAny(back.Task, Task.Delay(100, ct));
        }

        Assert.True(back.Task.IsCompleted);
        Assert.True(d.Plane.GetRules().Single(r => r.InRoute == 22).Packets >= 1);
        Assert.Equal(SecureSessionState.Established, sa.State);
    }

    [Fact]
    public async Task Session_OverOneDirectLink_NoRelay()
    {
        using var log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        await using var a = new TestNode(log: log);
        await using var c = new TestNode(log: log);
        var ct = TestContext.Current.CancellationToken;
        await a.Plane.OpenLinkAsync(c.Key.Public, c.EndPoint, ct);
        var sc = c.Plane.BindSession(new SessionRoute(9, a.Key.Public, false, a.Key.Public, 2, a.Key.Public, 1));
        var sa = await a.Plane.OpenSessionAsync(new SessionRoute(9, c.Key.Public, true, c.Key.Public, 1, c.Key.Public, 2), ct);
        await sc.Established.WaitAsync(TimeSpan.FromSeconds(20), ct);
        var got = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        sc.Receiver = d => got.TrySetResult(d.ToArray());
        await SendUntilAsync(sa, () => got.Task.IsCompleted, [4, 5, 6]);
        Assert.Equal(new byte[] { 4, 5, 6 }, await got.Task);
        Assert.Single(a.Plane.GetSessions());
        Assert.True(a.Plane.CloseSession(9));
        Assert.Empty(a.Plane.GetSessions());
        Assert.DoesNotContain(a.Plane.GetRules(), r => r.Action == RouteAction.Local);
    }

    private static async Task SendUntilAsync(SecureSession session, Func<bool> done, byte[]? datagram = null)
    {
        for (var i = 0; i < 100 && !done(); i++)
        {
            session.Send(datagram ?? new byte[64]);
            var deadline = DateTime.UtcNow.AddMilliseconds(100);
            while (!done() && DateTime.UtcNow < deadline)
            {
                await Task.Delay(5, TestContext.Current.CancellationToken);
            }
        }

        Assert.True(done(), "datagram not delivered");
    }
}
