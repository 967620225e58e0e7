using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Core.Crypto;
using Skywire.Core.Sessions;
using Skywire.Protocol.Sessions;

namespace Skywire.Tests.Sessions;

/// <summary>
/// Issue 13, item 1: sessions rekey by time and by message count, and packets in flight under the keys before a
/// switch still open (fake clock; before the fix sessions never rekeyed and the previous-keys fallback could not
/// work, see <see cref="Issue13SessionHandshakeTests.SecondInit_AtTheResponder_PacketsUnderTheKeysInUseStillOpen"/>).
/// </summary>
public sealed class Issue13SessionRekeyTests : IDisposable
{
    private static readonly SecureSessionOptions Fast = new()
    {
        RekeyAfterTime = TimeSpan.FromSeconds(2),
        RejectAfterTime = TimeSpan.FromSeconds(4),
        PreviousKeysLifetime = TimeSpan.FromSeconds(1),
    };

    private readonly KeyPair _a = KeyPair.Generate();
    private readonly KeyPair _b = KeyPair.Generate();

    public void Dispose()
    {
        _a.Dispose();
        _b.Dispose();
    }

    /// <summary>
    /// Traffic both ways every 10 ms across rekeys every 2 s on a 100 ms path whose jitter reorders packets around
    /// each switch: every datagram arrives exactly once, none is refused for its keys.
    /// </summary>
    [Theory]
    [InlineData(AeadAlgorithmId.ChaCha20Poly1305)]
    [InlineData(AeadAlgorithmId.Aes256Gcm)]
    public void RekeyByTime_UnderTraffic_NoDeliveryGap(AeadAlgorithmId aead)
    {
        Issue13SessionHandshakeTests.SkipUnlessSupported(aead);
        var path = new SimulatedPath(TimeSpan.FromMilliseconds(100)) { Jitter = TimeSpan.FromMilliseconds(30) }.Init();
        var (sa, sb) = Pair(path, aead, Fast);
        var (gotA, gotB) = (new List<int>(), new List<int>());
        sa.Receiver = d => gotA.Add(BitConverter.ToInt32(d));
        sb.Receiver = d => gotB.Add(BitConverter.ToInt32(d));
        sa.Start();
        path.Run(TimeSpan.FromSeconds(2), () => sb.State == SecureSessionState.Established);
        var sent = 0;
        path.Run(TimeSpan.FromSeconds(20), everyTick: () =>
        {
            sa.Send(BitConverter.GetBytes(sent));
            sb.Send(BitConverter.GetBytes(sent));
            sent++;
        });
        path.Run(TimeSpan.FromSeconds(1)); // the last packets land

        Assert.Equal(Enumerable.Range(0, sent), gotB.Order());
        Assert.Equal(Enumerable.Range(0, sent), gotA.Order());
        Assert.InRange(sa.Statistics.Handshakes, 9, 12);
        Assert.InRange(sb.Statistics.Handshakes, sa.Statistics.Handshakes - 1, sa.Statistics.Handshakes);
        foreach (var s in new[] { sa, sb })
        {
            Assert.Equal(SecureSessionState.Established, s.State);
            Assert.Equal(0, s.Statistics.UnknownIndex);
            Assert.Equal(0, s.Statistics.BadTag);
            Assert.Equal(0, s.Statistics.SendDropped);
        }
    }

    /// <summary>The responder sends nearly everything; the initiator sees its counters and rekeys on them.</summary>
    [Fact]
    public void RekeyByMessages_CountedInEitherDirection()
    {
        var path = new SimulatedPath(TimeSpan.FromMilliseconds(50)).Init();
        var (sa, sb) = Pair(path, AeadKey.PreferredAlgorithm, Fast with { RekeyAfterTime = TimeSpan.FromHours(1), RejectAfterTime = TimeSpan.FromHours(2), RekeyAfterMessages = 500 });
        var got = 0;
        sa.Receiver = _ => got++;
        sa.Start();
        path.Run(TimeSpan.FromSeconds(2), () => sb.State == SecureSessionState.Established);
        var sent = 0;
        path.Run(TimeSpan.FromSeconds(10), everyTick: () =>
        {
            for (var i = 0; i < 5; i++, sent++)
            {
                sb.Send([1]);
            }
        });
        path.Run(TimeSpan.FromSeconds(1));

        Assert.Equal(sent, got);
        Assert.InRange(sb.Statistics.Handshakes, (sent / 500) - 1, (sent / 500) + 2);
        Assert.Equal(0, sa.Statistics.UnknownIndex);
    }

    /// <summary>
    /// The peer vanishes: the initiator's rekey retries start from the measured round trip (not the 1 s guess) and
    /// double; when no rekey succeeds the keys expire and the session closes (and so does the silent responder's).
    /// </summary>
    [Fact]
    public void PeerVanishes_RetriesBackOffFromMeasuredRtt_KeysExpire_SessionCloses()
    {
        var path = new SimulatedPath(TimeSpan.FromMilliseconds(40)).Init();
        var (sa, sb) = Pair(path, AeadKey.PreferredAlgorithm, Fast with { RekeyAfterTime = TimeSpan.FromSeconds(2), RejectAfterTime = TimeSpan.FromSeconds(12) });
        string? reason = null;
        sa.Closed += (_, r) => reason = r;
        sa.Start();
        path.Run(TimeSpan.FromSeconds(1), () => sb.State == SecureSessionState.Established);
        Assert.Equal(TimeSpan.FromMilliseconds(80), sa.HandshakeRtt);
        path.Blackhole = true;
        path.Run(TimeSpan.FromSeconds(15), () => sa.State == SecureSessionState.Closed && sb.State == SecureSessionState.Closed);

        var inits = path.Wire.Where(w => w.From == 0 && w.Payload[0] == (byte)SessionPacketType.HandshakeInit).Select(w => w.At).ToList();
        Assert.InRange(inits[1].TotalMilliseconds, 2080, 2090);
        var gaps = inits.Skip(1).Zip(inits.Skip(2), (x, y) => y - x).ToList();
        // PTO = 80 + 4 x 40 + 5 = 245 ms, then doubling, each plus up to a quarter of jitter (and a 10 ms tick).
        Assert.InRange(gaps[0].TotalMilliseconds, 245, 245 * 1.25 + 10);
        Assert.InRange(gaps[1].TotalMilliseconds, 490, 490 * 1.25 + 10);
        Assert.InRange(gaps[2].TotalMilliseconds, 980, 980 * 1.25 + 10);
        Assert.Equal(SecureSessionState.Closed, sa.State);
        Assert.Equal(SecureSessionState.Closed, sb.State);
        Assert.Contains("expired", reason);
        Assert.InRange(path.Now.TotalSeconds, 12, 12.3);
    }

    /// <summary>
    /// A rekey's first answer is held up past the retry: the second init's answer completes the rekey, the first one
    /// then arrives and is dropped as stale (counted), with no second key switch and no reset; a duplicate of the
    /// init the responder already answered is refused as a replay. Data flows throughout.
    /// </summary>
    [Theory]
    [InlineData(AeadAlgorithmId.ChaCha20Poly1305)]
    [InlineData(AeadAlgorithmId.Aes256Gcm)]
    public void LateAndDuplicatedAnswers_ToAnEarlierInit_AreDroppedAsStale(AeadAlgorithmId aead)
    {
        Issue13SessionHandshakeTests.SkipUnlessSupported(aead);
        var path = new SimulatedPath(TimeSpan.FromMilliseconds(150)).Init();
        var (sa, sb) = Pair(path, aead, Fast with { RekeyAfterTime = TimeSpan.FromSeconds(3), RejectAfterTime = TimeSpan.FromSeconds(60) });
        var got = new List<int>();
        sb.Receiver = d => got.Add(BitConverter.ToInt32(d));
        sa.Start();
        path.Run(TimeSpan.FromSeconds(2), () => sb.State == SecureSessionState.Established);
        var responses = 0;
        path.OnSend = (from, payload) =>
        {
            if (from == 1 && payload[0] == (byte)SessionPacketType.HandshakeResponse && ++responses == 1) // the hook is set after the first handshake
            {
                path.Inject(0, payload.ToArray(), TimeSpan.FromMilliseconds(2200)); // ... and arrives twice
                return TimeSpan.FromSeconds(2); // the first rekey answer is late
            }

            return TimeSpan.Zero;
        };
        var sent = 0;
        path.Run(TimeSpan.FromSeconds(5), everyTick: () => sa.Send(BitConverter.GetBytes(sent++)));
        path.Run(TimeSpan.FromSeconds(1));

        Assert.Equal(Enumerable.Range(0, sent), got.Order());
        Assert.Equal(2, sa.Statistics.Handshakes);
        Assert.Equal(2, sa.Statistics.StaleHandshakes);
        Assert.Equal(3, sa.Statistics.HandshakeInitsSent);
        Assert.Equal(SecureSessionState.Established, sa.State);
        Assert.Equal(0, sb.Statistics.BadTag + sb.Statistics.UnknownIndex);

        // The init sent last is replayed: refused, no new keys.
        var lastInit = path.Wire.Last(w => w.Payload[0] == (byte)SessionPacketType.HandshakeInit).Payload;
        var rejected = sb.Statistics.HandshakeRejected;
        sb.OnPacket(lastInit.ToArray());
        Assert.Equal(rejected + 1, sb.Statistics.HandshakeRejected);
    }

    private (SecureSession A, SecureSession B) Pair(SimulatedPath path, AeadAlgorithmId aead, SecureSessionOptions options)
    {
        var sa = new SecureSession(Issue13SessionHandshakeTests.Route(42, _b.Public, initiator: true), _a, path.Side(0), aead, TimeSpan.FromSeconds(10), path.Time, NullLogger.Instance, options);
        var sb = new SecureSession(Issue13SessionHandshakeTests.Route(42, _a.Public, initiator: false), _b, path.Side(1), aead, TimeSpan.FromSeconds(10), path.Time, NullLogger.Instance, options);
        path.Bind(sa, sb);
        return (sa, sb);
    }
}
