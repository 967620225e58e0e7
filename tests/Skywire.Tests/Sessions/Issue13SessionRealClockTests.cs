using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Crypto;
using Skywire.Core.Sessions;
using Skywire.Protocol;
using Skywire.Protocol.Links;
using Skywire.TestKit;

namespace Skywire.Tests.Sessions;

/// <summary>
/// Issue 13, done-when "a session establishes in one round trip plus a little at 400 ms RTT with either cipher", on the
/// real clock: two sessions joined by the TestKit's FaultInjector (200 ms each way, real timers and threads). Before
/// the fix the first retry (250 ms) replaced the pending init, so with ChaCha20 the session never came up and with
/// AES-GCM only by accident, 0.6-1.2 s late. The fake-clock tests (Issue13SessionHandshakeTests) pin the exact times.
/// </summary>
public sealed class Issue13SessionRealClockTests : IDisposable
{
    private static readonly TimeSpan OneWay = TimeSpan.FromMilliseconds(200);

    private readonly KeyPair _a = KeyPair.Generate();
    private readonly KeyPair _b = KeyPair.Generate();

    public void Dispose()
    {
        _a.Dispose();
        _b.Dispose();
    }

    [Theory]
    [InlineData(AeadAlgorithmId.ChaCha20Poly1305)]
    [InlineData(AeadAlgorithmId.Aes256Gcm)]
    public async Task Handshake_400msRtt_EstablishesInOneRoundTripPlusALittle(AeadAlgorithmId aead)
    {
        Issue13SessionHandshakeTests.SkipUnlessSupported(aead);
        SecureSession? sa = null, sb = null;
        using var toB = new FaultInjector(new FaultOptions { Delay = OneWay }, d => sb!.OnPacket(d.ToArray()), "to b");
        using var toA = new FaultInjector(new FaultOptions { Delay = OneWay }, d => sa!.OnPacket(d.ToArray()), "to a");
        using var initiator = new SecureSession(Issue13SessionHandshakeTests.Route(42, _b.Public, initiator: true), _a, new Wire(toB), aead,
            TimeSpan.FromSeconds(10), TimeProvider.System, NullLogger.Instance);
        using var responder = new SecureSession(Issue13SessionHandshakeTests.Route(42, _a.Public, initiator: false), _b, new Wire(toA), aead,
            TimeSpan.FromSeconds(10), TimeProvider.System, NullLogger.Instance);
        sa = initiator;
        sb = responder;

        // The data plane ticks its sessions (retry timers) every 50 ms (DataPlaneOptions.TickInterval): so does this test.
        using var stop = new CancellationTokenSource();
        var ticker = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                var now = TimeProvider.System.GetTimestamp();
                sa.Tick(now);
                sb.Tick(now);
                stop.Token.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(50));
            }
        }) { IsBackground = true, Name = "session ticks" };

        var started = Stopwatch.GetTimestamp();
        sa.Start();
        ticker.Start();
        try
        {
            try
            {
                await sa.Established.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
            }
            catch (TimeoutException)
            {
                Assert.Fail($"{aead}: not established after 10 s, {sa.Statistics.HandshakeInitsSent} inits sent");
            }
            var took = Stopwatch.GetElapsedTime(started);

            // One round trip is 400 ms; "a little" leaves 600 ms for a loaded machine's scheduling (the first retry, which
            // the path's measured RTT would have answered, is due at about 1 s: no second init was needed).
            Assert.True(took < TimeSpan.FromMilliseconds(1000), $"established after {took.TotalMilliseconds:F0} ms, {sa.Statistics.HandshakeInitsSent} inits");
            Assert.True(took >= 2 * OneWay, $"established after {took.TotalMilliseconds:F0} ms: faster than the path");
            Assert.Equal(1, sa.Statistics.HandshakeInitsSent);
            Assert.Equal(aead, sa.Aead);
            await sb.Established.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        }
        finally
        {
            stop.Cancel();
            ticker.Join();
        }
    }

    private sealed class Wire(FaultInjector path) : IRoutedSender
    {
        public int MaxUdpPayload => LinkLimits.DefaultMaxUdpPayload;

        public bool SendRouted(PubKey outLink, uint routeId, Span<byte> packet, int payloadLength)
        {
            path.Post(packet.Slice(LinkLimits.RoutedHeaderLength, payloadLength));
            return true;
        }
    }
}
