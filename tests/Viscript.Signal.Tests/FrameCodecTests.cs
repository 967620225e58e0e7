using System.Buffers;
using System.Text;
using Skywire.TestKit.Buffers;
using Viscript.Signal.Protocol;

namespace Viscript.Signal.Tests;

public class FrameCodecTests
{
    private const int Max = 1024 * 1024;

    private static byte[] Hex(string hex) => Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));

    private static byte[] Encode(Action<ArrayBufferWriter<byte>> write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        write(buffer);
        return buffer.WrittenSpan.ToArray();
    }

    [Fact]
    public void WriteNormal_RegFromReference_IsByteExact()
    {
        var bytes = Encode(w => SignalFrameWriter.WriteNormal(w, 1, SignalOps.Reg, "{\"Id\":2}"u8));
        Assert.Equal(Hex("01 00000001 00000009 00 7B224964223A327D"), bytes);
    }

    [Fact]
    public void WriteNormal_PingRequestFromReference_IsByteExact()
    {
        var bytes = Encode(w => SignalFrameWriter.WriteNormal(w, 2, SignalOps.Ping, "null"u8));
        Assert.Equal(Hex("01 00000002 00000005 01 6E756C6C"), bytes);
    }

    [Fact]
    public void WriteAckPingPong_AreByteExact()
    {
        Assert.Equal(Hex("80 0000002A"), Encode(w => SignalFrameWriter.WriteAck(w, 42)));
        Assert.Equal(Hex("81 0000018BCFE56800"), Encode(w => SignalFrameWriter.WritePing(w, 0x18BCFE56800)));
        Assert.Equal(Hex("82 0102030405060708"), Encode(w => SignalFrameWriter.WritePong(w, 0x0102030405060708)));
    }

    [Fact]
    public void TryReadFrame_ReferenceReg_DecodesOpAndJson()
    {
        var sequence = new ReadOnlySequence<byte>(Hex("01 00000001 00000009 00 7B224964223A327D"));
        Assert.True(SignalFrameReader.TryReadFrame(ref sequence, Max, out var frame));
        Assert.Equal(SignalFrameType.Normal, frame.Type);
        Assert.Equal(1u, frame.Seq);
        Assert.Equal(SignalOps.Reg, frame.Op);
        Assert.Equal("{\"Id\":2}", Encoding.UTF8.GetString(frame.Json.ToArray()));
        Assert.True(sequence.IsEmpty);
    }

    public static TheoryData<string> RoundTripFrames => new()
    {
        "normal", "empty-normal", "ack", "ping", "pong", "big",
    };

    private static (byte[] Bytes, Action<SignalFrame> Check) Sample(string kind) => kind switch
    {
        "normal" => (Encode(w => SignalFrameWriter.WriteNormal(w, 7, 0x82, "{\"Pid\":123}"u8)), f =>
        {
            Assert.Equal(SignalFrameType.Normal, f.Type);
            Assert.Equal(7u, f.Seq);
            Assert.Equal(0x82, f.Op);
            Assert.Equal("{\"Pid\":123}", Encoding.UTF8.GetString(f.Json.ToArray()));
        }),
        "empty-normal" => (Encode(w => SignalFrameWriter.WriteNormalRaw(w, uint.MaxValue, [])), f =>
        {
            Assert.Equal(uint.MaxValue, f.Seq);
            Assert.False(f.HasOp);
        }),
        "ack" => (Encode(w => SignalFrameWriter.WriteAck(w, 0xDEADBEEF)), f =>
        {
            Assert.Equal(SignalFrameType.Ack, f.Type);
            Assert.Equal(0xDEADBEEFu, f.Seq);
        }),
        "ping" => (Encode(w => SignalFrameWriter.WritePing(w, ulong.MaxValue - 1)), f =>
        {
            Assert.Equal(SignalFrameType.Ping, f.Type);
            Assert.Equal(ulong.MaxValue - 1, f.Timestamp);
        }),
        "pong" => (Encode(w => SignalFrameWriter.WritePong(w, 12345)), f =>
        {
            Assert.Equal(SignalFrameType.Pong, f.Type);
            Assert.Equal(12345ul, f.Timestamp);
        }),
        _ => (Encode(w => SignalFrameWriter.WriteNormal(w, 9, 0x80, Encoding.UTF8.GetBytes("\"" + new string('x', 20000) + "\""))), f =>
        {
            Assert.Equal(20003, f.Body.Length);
            Assert.Equal((byte)'x', f.Json.Slice(10000, 1).FirstSpan[0]);
        }),
    };

    [Theory]
    [MemberData(nameof(RoundTripFrames))]
    public void TryReadFrame_RoundTrip_SplitAtEveryOffset(string kind)
    {
        var (bytes, check) = Sample(kind);
        // Two frames back to back, so a split can also fall into the second one.
        var twice = bytes.Concat(bytes).ToArray();
        var step = twice.Length > 200 ? 97 : 1;
        for (var cut = 0; cut <= twice.Length; cut += step)
        {
            var sequence = FragmentedSequence.Split(twice, cut, cut / 2);
            Assert.True(SignalFrameReader.TryReadFrame(ref sequence, Max, out var first));
            check(first);
            Assert.True(SignalFrameReader.TryReadFrame(ref sequence, Max, out var second));
            check(second);
            Assert.True(sequence.IsEmpty);
        }
    }

    [Theory]
    [MemberData(nameof(RoundTripFrames))]
    public void TryReadFrame_EveryPrefix_NeedsMoreAndLeavesBufferUntouched(string kind)
    {
        var (bytes, check) = Sample(kind);
        var step = bytes.Length > 200 ? 101 : 1;
        for (var length = 0; length < bytes.Length; length += step)
        {
            var sequence = FragmentedSequence.Split(bytes[..length], length / 3);
            var before = sequence.Length;
            Assert.False(SignalFrameReader.TryReadFrame(ref sequence, Max, out _));
            Assert.Equal(before, sequence.Length);
        }

        var bytewise = FragmentedSequence.Bytewise(bytes.Length > 200 ? bytes[..300] : bytes);
        if (bytes.Length <= 200)
        {
            Assert.True(SignalFrameReader.TryReadFrame(ref bytewise, Max, out var frame));
            check(frame);
        }
    }

    [Theory]
    [InlineData((byte)0x00)]
    [InlineData((byte)0x02)]
    [InlineData((byte)0x7f)]
    [InlineData((byte)0x83)]
    [InlineData((byte)0xff)]
    public void TryReadFrame_UnknownType_Throws(byte type)
    {
        var sequence = new ReadOnlySequence<byte>([type, 0, 0, 0, 1]);
        var ex = Assert.Throws<SignalProtocolException>(() => SignalFrameReader.TryReadFrame(ref sequence, Max, out _));
        Assert.Contains($"0x{type:x2}", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TryReadFrame_OversizedLength_ThrowsFromTheHeaderAlone()
    {
        // Only the 9 header bytes: the limit is enforced before the body is waited for or allocated.
        var sequence = new ReadOnlySequence<byte>(Hex("01 00000001 00002801"));
        Assert.Throws<SignalProtocolException>(() => SignalFrameReader.TryReadFrame(ref sequence, 10240, out _));

        var atLimit = new ReadOnlySequence<byte>(Hex("01 00000001 00002800"));
        Assert.False(SignalFrameReader.TryReadFrame(ref atLimit, 10240, out _));

        var huge = new ReadOnlySequence<byte>(Hex("01 00000001 FFFFFFFF"));
        Assert.Throws<SignalProtocolException>(() => SignalFrameReader.TryReadFrame(ref huge, Max, out _));
    }

    [Fact]
    public void TryReadFrame_RandomGarbage_OnlyFramesNeedMoreOrProtocolErrors()
    {
        var random = new Random(20170926);
        for (var i = 0; i < 20000; i++)
        {
            var data = new byte[random.Next(0, 64)];
            random.NextBytes(data);
            if (data.Length > 0 && random.Next(2) == 0)
            {
                data[0] = (byte)(random.Next(4) switch { 0 => 0x01, 1 => 0x80, 2 => 0x81, _ => 0x82 });
            }

            var sequence = FragmentedSequence.Split(data, random.Next(0, data.Length + 1), random.Next(0, data.Length + 1));
            try
            {
                while (SignalFrameReader.TryReadFrame(ref sequence, 4096, out var frame))
                {
                    Assert.True(frame.Body.Length <= 4096);
                }
            }
            catch (SignalProtocolException)
            {
                // Expected for garbage; any other exception type fails the test.
            }
        }
    }
}
