using Skywire.Core.Crypto;
using Skywire.Protocol.Framing;
using Skywire.Protocol.Messenger;

namespace Skywire.Tests.Messenger;

public sealed class MessengerFramesTests
{
    [Fact]
    public void Deliver_RoundTrips()
    {
        var from = KeyPair.Generate().Public;
        var buffer = new byte[100];
        var n = MessengerFrames.WriteDeliver(buffer, from, MessengerProtocol.DeliverFlagQueued, [9, 8, 7]);
        MessengerFrames.ReadDeliver(buffer.AsSpan(0, n), out var f, out var flags, out var envelope);
        Assert.Equal(from, f);
        Assert.Equal(MessengerProtocol.DeliverFlagQueued, flags);
        Assert.Equal([9, 8, 7], envelope.ToArray());
    }

    [Fact]
    public void StreamFrames_RoundTrip()
    {
        var key = KeyPair.Generate().Public;
        MessengerFrames.ReadStreamIncoming(MessengerFrames.StreamIncoming(77, key, [1, 2]), out var circuit, out var from, out var hs);
        Assert.Equal((77u, key), (circuit, from));
        Assert.Equal([1, 2], hs.ToArray());
        Assert.Equal(5u, MessengerFrames.ReadStreamCredit(MessengerFrames.StreamCredit(5, 4096), out var bytes));
        Assert.Equal(4096u, bytes);
        Assert.Equal(6u, MessengerFrames.ReadStreamClose(MessengerFrames.StreamClose(6, StreamCloseReason.Aborted), out var reason));
        Assert.Equal(StreamCloseReason.Aborted, reason);
        MessengerFrames.ReadStreamOpen(MessengerFrames.KeyAndBody(key, [3]), out var to, out var open);
        Assert.Equal((key, 3), (to, open[0]));
        Assert.Equal(9u, MessengerFrames.ReadCircuit(MessengerFrames.CircuitAndBody(9, [4, 5]), out var body));
        Assert.Equal([4, 5], body.ToArray());
    }

    [Fact]
    public void Readers_RejectEveryTruncation_WithProtocolViolation()
    {
        var key = KeyPair.Generate().Public;
        var send = MessengerFrames.KeyAndBody(key, []);
        for (var n = 0; n < send.Length; n++)
        {
            Assert.Throws<ProtocolViolationException>(() => MessengerFrames.ReadSend(send.AsSpan(0, n), out _, out _));
        }

        var incoming = MessengerFrames.StreamIncoming(1, key, []);
        for (var n = 0; n < incoming.Length; n++)
        {
            Assert.Throws<ProtocolViolationException>(() => MessengerFrames.ReadStreamIncoming(incoming.AsSpan(0, n), out _, out _, out _));
        }

        Assert.Throws<ProtocolViolationException>(() => MessengerFrames.ReadStreamCredit(new byte[7], out _));
        Assert.Throws<ProtocolViolationException>(() => MessengerFrames.ReadStreamClose(new byte[6], out _));
        Assert.Throws<ProtocolViolationException>(() => MessengerFrames.ReadCircuit(new byte[3], out _));
    }

    [Fact]
    public void Readers_OnRandomInput_ThrowOnlyProtocolViolations()
    {
        var random = new Random(42);
        for (var i = 0; i < 2000; i++)
        {
            var junk = new byte[random.Next(0, 80)];
            random.NextBytes(junk);
            Check(() => MessengerFrames.ReadSend(junk, out _, out _));
            Check(() => MessengerFrames.ReadDeliver(junk, out _, out _, out _));
            Check(() => MessengerFrames.ReadStreamIncoming(junk, out _, out _, out _));
            Check(() => MessengerFrames.ReadStreamCredit(junk, out _));
            Check(() => MessengerFrames.ReadStreamClose(junk, out _));
        }

        static void Check(Action parse)
        {
            try
            {
                parse();
            }
            catch (ProtocolViolationException)
            {
            }
        }
    }

    [Fact]
    public void Limits_AreConsistent()
    {
        Assert.True(MessengerProtocol.MaxEnvelopeSize + 33 + FrameCodec.HeaderSize < MessengerProtocol.MaxFrameSize);
        Assert.Equal(65535, MessengerProtocol.MaxMessageSize + 33 + AeadKey.TagLength);
        Assert.True(MessengerProtocol.MaxStreamRecordPlaintext + AeadKey.TagLength + 4 < MessengerProtocol.MaxFrameSize);
    }
}
