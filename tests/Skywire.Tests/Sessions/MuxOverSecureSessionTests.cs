using System.Security.Cryptography;
using Skywire.Core.Forwarding;
using Skywire.Core.Links;
using Skywire.Core.Sessions;
using Skywire.Core.Sessions.Mux;
using Skywire.Protocol.Links;
using Skywire.Tests.Links;

namespace Skywire.Tests.Sessions;

/// <summary>
/// The whole data path: reliable streams (StreamMultiplexer) over SecureSession over links through
/// a relay, with the wire next to the relay dropping packets.
/// </summary>
public sealed class MuxOverSecureSessionTests : IAsyncLifetime
{
    private TestNode _a = null!;
    private TestNode _b = null!;
    private TestNode _c = null!;
    private RecordingProxy _wire = null!;

    public async ValueTask InitializeAsync()
    {
        _a = new TestNode();
        _b = new TestNode();
        _c = new TestNode();
        _wire = new RecordingProxy(_b.EndPoint);
        var ct = TestContext.Current.CancellationToken;
        await _a.Plane.OpenLinkAsync(_b.Key.Public, _wire.EndPoint, ct);
        await _b.Plane.OpenLinkAsync(_c.Key.Public, _c.EndPoint, ct);
        await Wait.UntilAsync(() => _b.Plane.GetLink(_a.Key.Public)?.State == LinkState.Up
            && _c.Plane.GetLink(_b.Key.Public)?.State == LinkState.Up, what: "links up");
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
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.05)]
    public async Task Stream_ThroughRelay_ArrivesByteExact(double dropRate)
    {
        var ct = TestContext.Current.CancellationToken;
        var sc = _c.Plane.BindSession(new SessionRoute(1, _a.Key.Public, false, _b.Key.Public, 201, _b.Key.Public, 200));
        var sa = await _a.Plane.OpenSessionAsync(new SessionRoute(1, _c.Key.Public, true, _b.Key.Public, 100, _b.Key.Public, 101), ct);
        await using var muxA = new StreamMultiplexer(sa);
        await using var muxC = new StreamMultiplexer(sc);
        sa.Receiver = muxA.Receive;
        sc.Receiver = muxC.Receive;

        var rng = new Random(5);
        var dropped = 0;
        _wire.Tamper = p =>
        {
            if (p[0] == (byte)LinkPacketType.Routed && rng.NextDouble() < dropRate)
            {
                Interlocked.Increment(ref dropped);
                return null;
            }

            return p;
        };

        var data = new byte[2 * 1024 * 1024];
        RandomNumberGenerator.Fill(data);
        var accept = Task.Run(async () =>
        {
            var stream = await muxC.AcceptStreamAsync(ct);
            stream.Accept();
            using var received = new MemoryStream();
            await stream.CopyToAsync(received, ct);
            await stream.WriteAsync("done"u8.ToArray(), ct);
            await stream.CompleteWritesAsync(ct);
            return (Open: stream.OpenData.ToArray(), Data: received.ToArray());
        }, ct);

        var sender = await muxA.OpenStreamAsync("nc"u8.ToArray(), ct);
        await sender.WriteAsync(data, ct);
        await sender.CompleteWritesAsync(ct);
        using var reply = new MemoryStream();
        await sender.CopyToAsync(reply, ct).WaitAsync(TimeSpan.FromSeconds(60), ct);
        var (open, got) = await accept.WaitAsync(TimeSpan.FromSeconds(60), ct);

        Assert.Equal("nc"u8.ToArray(), open);
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(got));
        Assert.Equal("done"u8.ToArray(), reply.ToArray());
        if (dropRate > 0)
        {
            Assert.True(Volatile.Read(ref dropped) > 0);
        }

        Assert.Equal(0, sc.Statistics.BadTag);
        Assert.DoesNotContain(_wire.Seen, p => p.Length > 100 && p.AsSpan(40).IndexOf(data.AsSpan(0, 32)) >= 0);
    }
}
