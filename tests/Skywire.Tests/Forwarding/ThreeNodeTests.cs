using System.Security.Cryptography;
using Skywire.Core.Forwarding;
using Skywire.Core.Sessions;
using Skywire.Protocol.Links;
using Skywire.TestKit.Logging;
using Skywire.Tests.Links;

namespace Skywire.Tests.Forwarding;

/// <summary>
/// A, relay B, C on loopback: links A-B (through a recording proxy that stands for the
/// wire next to the relay) and B-C, rules installed by the test, a session between A and C sealed end to end.
/// </summary>
public sealed class ThreeNodeTests : IAsyncLifetime
{
    private TestNode _a = null!;
    private TestNode _b = null!;
    private TestNode _c = null!;
    private RecordingProxy _wire = null!;
    private TestLog _log = null!;

    public async ValueTask InitializeAsync()
    {
        _log = new TestLog(TestContext.Current.TestOutputHelper!.WriteLine);
        _a = new TestNode(log: _log);
        _b = new TestNode(log: _log);
        _c = new TestNode(log: _log);
        _wire = new RecordingProxy(_b.EndPoint);
        var ct = TestContext.Current.CancellationToken;
        await _a.Plane.OpenLinkAsync(_b.Key.Public, _wire.EndPoint, ct);
        await _b.Plane.OpenLinkAsync(_c.Key.Public, _c.EndPoint, ct);
        await Wait.UntilAsync(() => _b.Plane.GetLink(_a.Key.Public)?.State == Skywire.Core.Links.LinkState.Up
            && _c.Plane.GetLink(_b.Key.Public)?.State == Skywire.Core.Links.LinkState.Up, what: "links up");

        // Forward A->C: A sends 100 to B, B rewrites to 200 towards C. Back: C sends 201, B rewrites to 101.
        var life = TimeSpan.FromMinutes(1);
        _b.Plane.InstallRule(new RouteRule(_a.Key.Public, 100, _c.Key.Public, 200, life));
        _b.Plane.InstallRule(new RouteRule(_c.Key.Public, 201, _a.Key.Public, 101, life));
    }

    public async ValueTask DisposeAsync()
    {
        _wire.Dispose();
        await _a.DisposeAsync();
        await _b.DisposeAsync();
        await _c.DisposeAsync();
        _log.Dispose(); // fails the test on an Error log it did not expect
    }

    private async Task<(SecureSession A, SecureSession C)> OpenSessionAsync(ulong id = 1)
    {
        var accepted = new TaskCompletionSource<SecureSession>(TaskCreationOptions.RunContinuationsAsynchronously);
        _c.Plane.SessionAccepted += (_, s) => accepted.TrySetResult(s);
        var atC = _c.Plane.BindSession(new SessionRoute(id, _a.Key.Public, false, _b.Key.Public, 201, _b.Key.Public, 200));
        var atA = await _a.Plane.OpenSessionAsync(new SessionRoute(id, _c.Key.Public, true, _b.Key.Public, 100, _b.Key.Public, 101), TestContext.Current.CancellationToken);
        Assert.Same(atC, await accepted.Task.WaitAsync(TimeSpan.FromSeconds(20), TestContext.Current.CancellationToken));
        Assert.Equal(SecureSessionState.Established, atC.State);
        return (atA, atC);
    }

    [Fact]
    public async Task Session_ThroughRelay_DeliversBothWays_RelayNeverSeesPlaintext_Metered()
    {
        var (sa, sc) = await OpenSessionAsync();
        var atC = new List<byte[]>();
        var atA = new List<byte[]>();
        var gotAll = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        sc.Receiver = d =>
        {
            lock (atC)
            {
                atC.Add(d.ToArray());
                if (atC.Count == 20)
                {
                    gotAll.TrySetResult();
                }
            }
        };
        var echoed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        sa.Receiver = d =>
        {
            atA.Add(d.ToArray());
            echoed.TrySetResult();
        };

        // A recognisable plaintext, repeated so it would stand out anywhere on the wire.
        var marker = "PLAINTEXT-MARKER-0123456789"u8.ToArray();
        var datagrams = Enumerable.Range(0, 20).Select(i =>
        {
            var d = new byte[i == 0 ? sa.MaxDatagramSize : 100 + i];
            RandomNumberGenerator.Fill(d);
            marker.CopyTo(d, 0);
            return d;
        }).ToList();

        // UDP may drop on a loaded machine: resend until all arrived (duplicates are impossible: replay window).
        for (var attempt = 0; attempt < 20 && !gotAll.Task.IsCompleted; attempt++)
        {
            lock (atC)
            {
                foreach (var d in datagrams.Where(d => !atC.Any(x => x.AsSpan().SequenceEqual(d))))
                {
                    sa.Send(d);
                }
            }

            await Task.WhenAny(gotAll.Task, Task.Delay(500, TestContext.Current.CancellationToken));
        }

        await gotAll.Task.WaitAsync(TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken);
        Assert.Equal(datagrams.Select(Convert.ToHexString).Order(), atC.Select(Convert.ToHexString).Order());

        sc.Send("reply"u8);
        await echoed.Task.WaitAsync(TimeSpan.FromSeconds(20), TestContext.Current.CancellationToken);
        Assert.Equal("reply"u8.ToArray(), atA[0]);

        // The relay's wire carried routed packets but never the plaintext.
        Assert.Contains(_wire.Seen, p => p[0] == (byte)LinkPacketType.Routed);
        Assert.DoesNotContain(_wire.Seen, p => p.AsSpan().IndexOf(marker) >= 0);
        Assert.DoesNotContain(_wire.Seen, p => p.AsSpan().IndexOf("reply"u8) >= 0);

        // Metering at the relay: every packet of the session passed the two rules.
        var rules = _b.Plane.GetRules();
        var forward = rules.Single(r => r.InRoute == 100);
        var back = rules.Single(r => r.InRoute == 201);
        Assert.True(forward.Packets >= 21, $"forward packets {forward.Packets}"); // handshake + confirm + 20
        Assert.True(forward.Bytes > sa.MaxDatagramSize);
        Assert.True(back.Packets >= 2);
        Assert.True(_b.Plane.Statistics.Forwarded >= forward.Packets + back.Packets - 1);
        Assert.Equal(0, _b.Plane.Statistics.Delivered);
    }

    [Fact]
    public async Task TamperingAtTheRelay_DetectedEndToEnd_HeaderTamper_DroppedAtRelay()
    {
        var (sa, sc) = await OpenSessionAsync();
        var received = 0;
        sc.Receiver = _ => Interlocked.Increment(ref received);

        // Flip a byte inside the routed payload body: the link tag does not cover it, so the relay
        // forwards it, and the end-to-end AEAD at C rejects it.
        _wire.Tamper = p =>
        {
            if (p[0] == (byte)LinkPacketType.Routed && p.Length > 80)
            {
                p[LinkLimits.RoutedHeaderLength + 30] ^= 0x01;
            }

            return p;
        };
        sa.Send(new byte[200]);
        await Wait.UntilAsync(() => sc.Statistics.BadTag >= 1, what: "end-to-end tag failure at C");
        Assert.Equal(0, Volatile.Read(ref received));

        // Flip the label: the link tag covers it, so B drops the packet.
        var badTagAtB = _b.Plane.Statistics.BadTag;
        _wire.Tamper = p =>
        {
            if (p[0] == (byte)LinkPacketType.Routed)
            {
                p[LinkLimits.TransportHeaderLength + 3] ^= 0x01;
            }

            return p;
        };
        sa.Send(new byte[200]);
        await Wait.UntilAsync(() => _b.Plane.Statistics.BadTag > badTagAtB, what: "link tag failure at B");

        _wire.Tamper = null;
        for (var i = 0; i < 50 && Volatile.Read(ref received) == 0; i++)
        {
            sa.Send(new byte[10]);
            await Task.Delay(50, TestContext.Current.CancellationToken);
        }

        Assert.True(Volatile.Read(ref received) >= 1);
    }

    [Fact]
    public async Task NoRule_DroppedAndCounted_RemovedRule_StopsForwarding()
    {
        var (sa, sc) = await OpenSessionAsync();
        Assert.True(_b.Plane.RemoveRule(_a.Key.Public, 100));
        var noRule = _b.Plane.Statistics.NoRule;
        sa.Send(new byte[50]);
        await Wait.UntilAsync(() => _b.Plane.Statistics.NoRule > noRule, what: "no-rule drop at B");
        Assert.Equal(0, sc.Statistics.Received);
    }

    [Fact]
    public async Task WrongSessionPeer_Refused()
    {
        // C expects the session from some other node: A's handshake is refused, A times out.
        using var stranger = Skywire.Core.Crypto.KeyPair.Generate();
        var atC = _c.Plane.BindSession(new SessionRoute(7, stranger.Public, false, _b.Key.Public, 201, _b.Key.Public, 200));
        var atA = _a.Plane.BindSession(new SessionRoute(7, _c.Key.Public, true, _b.Key.Public, 100, _b.Key.Public, 101));
        await Wait.UntilAsync(() => atC.Statistics.HandshakeRejected >= 1, what: "refused init");
        Assert.Equal(SecureSessionState.Handshaking, atC.State);
        Assert.Equal(SecureSessionState.Handshaking, atA.State);
        _a.Plane.CloseSession(7);
        await Assert.ThrowsAsync<SessionClosedException>(() => atA.Established);
    }
}
