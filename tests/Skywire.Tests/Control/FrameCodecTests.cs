using System.Buffers;
using System.Text.Json;
using Skywire.Protocol.Control;
using Skywire.Protocol.Framing;
using Skywire.TestKit.Buffers;

namespace Skywire.Tests.Control;

public class FrameCodecTests
{
    private static byte[] TwoFrames()
    {
        var a = FrameCodec.Encode(0x11, 7, "{\"name\":\"x\",\"type\":\"y\"}"u8);
        var b = FrameCodec.Encode(0x91, 7, []);
        return [.. a, .. b];
    }

    [Fact]
    public void RoundTrip_HeaderFieldsAndPayload_Preserved()
    {
        var bytes = FrameCodec.Encode(0x15, 0xDEADBEEF, [1, 2, 3]);
        Assert.Equal(new byte[] { 0, 0, 0, 3, 0x15, 0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3 }, bytes);
        var seq = new ReadOnlySequence<byte>(bytes);
        Assert.True(FrameCodec.TryReadFrame(ref seq, 100, out var frame));
        Assert.Equal(0x15, frame.Opcode);
        Assert.Equal(0xDEADBEEFu, frame.RequestId);
        Assert.Equal(new byte[] { 1, 2, 3 }, frame.Payload.ToArray());
        Assert.False(frame.IsResponse);
        Assert.True(seq.IsEmpty);
    }

    [Fact]
    public void TryReadFrame_EveryTruncation_NeedsMoreAndLeavesBufferUntouched()
    {
        var bytes = FrameCodec.Encode(0x01, 1, new byte[40]);
        for (var n = 0; n < bytes.Length; n++)
        {
            var seq = new ReadOnlySequence<byte>(bytes, 0, n);
            Assert.False(FrameCodec.TryReadFrame(ref seq, 1000, out _));
            Assert.Equal(n, seq.Length);
        }
    }

    [Fact]
    public void TryReadFrame_SplitAtEveryOffsetAndPair_SameFrames()
    {
        var bytes = TwoFrames();
        for (var i = 0; i <= bytes.Length; i++)
        {
            for (var j = i; j <= bytes.Length; j += 3)
            {
                var seq = FragmentedSequence.Split(bytes, i, j);
                Assert.True(FrameCodec.TryReadFrame(ref seq, 1000, out var f1));
                Assert.Equal(0x11, f1.Opcode);
                var msg = JsonSerializer.Deserialize(f1.Payload.ToArray(), ControlJsonContext.Default.AppRegisterMessage);
                Assert.Equal("x", msg!.Name);
                Assert.True(FrameCodec.TryReadFrame(ref seq, 1000, out var f2));
                Assert.True(f2.IsResponse);
                Assert.Equal(7u, f2.RequestId);
                Assert.True(seq.IsEmpty);
            }
        }
    }

    [Fact]
    public void TryReadFrame_LengthOverLimit_ThrowsFromHeaderAlone()
    {
        // Only the 9-byte header is present: the limit is checked before waiting for (or allocating) the payload.
        var header = new byte[FrameCodec.HeaderSize];
        FrameCodec.WriteHeader(header, 0x01, 1, 1_000_001);
        var seq = new ReadOnlySequence<byte>(header);
        Assert.Throws<ProtocolViolationException>(() => FrameCodec.TryReadFrame(ref seq, 1_000_000, out _));

        FrameCodec.WriteHeader(header, 0x01, 1, 1_000_000);
        seq = new ReadOnlySequence<byte>(header);
        Assert.False(FrameCodec.TryReadFrame(ref seq, 1_000_000, out _));
    }

    [Fact]
    public void TryReadFrame_MaxUInt32Length_Rejected()
    {
        byte[] header = [0xFF, 0xFF, 0xFF, 0xFF, 1, 0, 0, 0, 1];
        var seq = new ReadOnlySequence<byte>(header);
        Assert.Throws<ProtocolViolationException>(() => FrameCodec.TryReadFrame(ref seq, FrameCodec.DefaultMaxFrameSize, out _));
    }

    [Fact]
    public void Fuzz_RandomBytes_OnlyFramesOrProtocolViolation()
    {
        var random = new Random(1234);
        for (var round = 0; round < 5000; round++)
        {
            var data = new byte[random.Next(0, 64)];
            random.NextBytes(data);
            if (data.Length > 4 && random.Next(2) == 0)
            {
                data[0] = 0;
                data[1] = 0;
                data[2] = 0; // small lengths so some random inputs are whole frames
            }

            var seq = FragmentedSequence.Split(data, random.Next(0, data.Length + 1), random.Next(0, data.Length + 1));
            try
            {
                while (FrameCodec.TryReadFrame(ref seq, 4096, out var frame))
                {
                    Assert.True(frame.Payload.Length <= 4096);
                }
            }
            catch (ProtocolViolationException)
            {
            }
        }
    }

    [Fact]
    public void Fuzz_RandomPayloads_DeserializeOrJsonException()
    {
        var random = new Random(99);
        var valid = JsonSerializer.SerializeToUtf8Bytes(new InstallRulesMessage { Rules = [new RuleMessage { InLink = "a", InRoute = 5, OutLink = "b", OutRoute = 6, TtlMs = 1000 }] }, ControlJsonContext.Default.InstallRulesMessage);
        for (var round = 0; round < 3000; round++)
        {
            var data = (byte[])valid.Clone();
            for (var k = 0; k < 1 + random.Next(4); k++)
            {
                data[random.Next(data.Length)] = (byte)random.Next(256);
            }

            try
            {
                _ = JsonSerializer.Deserialize(data, ControlJsonContext.Default.InstallRulesMessage);
            }
            catch (JsonException)
            {
            }
        }
    }

    [Fact]
    public void Messages_RoundTrip_CamelCaseJson()
    {
        var route = new SessionRouteMessage { SessionId = 42, Peer = "02ab", Initiator = true, OutLink = "03cd", OutRoute = 9, InLink = "03cd", InRoute = 10, TtlMs = 60000 };
        var json = JsonSerializer.Serialize(route, ControlJsonContext.Default.SessionRouteMessage);
        Assert.Contains("\"sessionId\":42", json, StringComparison.Ordinal);
        Assert.Equal(route, JsonSerializer.Deserialize(json, ControlJsonContext.Default.SessionRouteMessage));
    }
}
