using System.Text.Json;
using Skywire.Core.AppApi;
using Skywire.Protocol.AppApi;
using Skywire.Protocol.Framing;

namespace Skywire.Tests.AppApi;

public class FrameIoTests
{
    /// <summary>Returns at most <paramref name="chunk"/> bytes per read, to split frames at every offset.</summary>
    private sealed class TrickleStream(byte[] data, int chunk) : MemoryStream(data)
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(buffer.Length, chunk)], cancellationToken);
    }

    private static byte[] Frame(AppApiOpcode op, uint id, object message, System.Text.Json.Serialization.Metadata.JsonTypeInfo type) =>
        FrameCodec.Encode((byte)op, id, JsonSerializer.SerializeToUtf8Bytes(message, type));

    [Fact]
    public async Task ReadFrame_OneByteAtATime_ThenRawBytesUntouched()
    {
        var hello = Frame(AppApiOpcode.Dial, 3, new DialMessage { Node = "02ab", App = "echo" }, AppApiJsonContext.Default.DialMessage);
        byte[] raw = [1, 2, 3, 4, 5];
        for (var chunk = 1; chunk <= hello.Length + raw.Length; chunk++)
        {
            using var stream = new TrickleStream([.. hello, .. raw], chunk);
            var frame = await FrameIo.ReadFrameAsync(stream, 1024, CancellationToken.None);
            Assert.NotNull(frame);
            Assert.Equal((byte)AppApiOpcode.Dial, frame.Value.Opcode);
            Assert.Equal(3u, frame.Value.RequestId);
            Assert.Equal("echo", FrameIo.Parse(frame.Value.Payload, AppApiJsonContext.Default.DialMessage).App);
            // Nothing past the frame was consumed: the stream's raw bytes are all still there.
            var rest = new byte[16];
            var n = await stream.ReadAsync(rest.AsMemory(), CancellationToken.None);
            while (n < raw.Length)
            {
                n += await stream.ReadAsync(rest.AsMemory(n), CancellationToken.None);
            }

            Assert.Equal(raw, rest[..n]);
        }
    }

    [Fact]
    public async Task ReadFrame_CleanEnd_Null_TruncatedAnywhere_Violation()
    {
        Assert.Null(await FrameIo.ReadFrameAsync(new MemoryStream([]), 1024, CancellationToken.None));
        var frame = Frame(AppApiOpcode.Hello, 1, new AppHelloMessage { Version = 1, Token = "t" }, AppApiJsonContext.Default.AppHelloMessage);
        for (var cut = 1; cut < frame.Length; cut++)
        {
            await Assert.ThrowsAsync<ProtocolViolationException>(() => FrameIo.ReadFrameAsync(new MemoryStream(frame[..cut]), 1024, CancellationToken.None));
        }
    }

    [Fact]
    public async Task ReadFrame_Oversized_ViolationBeforePayloadArrives()
    {
        var header = new byte[FrameCodec.HeaderSize];
        FrameCodec.WriteHeader(header, (byte)AppApiOpcode.Register, 1, AppApiProtocol.MaxFrameSize + 1);
        // Only the header is there: the limit is enforced without waiting for (or allocating) the payload.
        await Assert.ThrowsAsync<ProtocolViolationException>(() => FrameIo.ReadFrameAsync(new MemoryStream(header), AppApiProtocol.MaxFrameSize, CancellationToken.None));
    }

    [Fact]
    public void Parse_MalformedJson_IsProtocolViolation()
    {
        Assert.Throws<ProtocolViolationException>(() => FrameIo.Parse("{\"name\":"u8.ToArray(), AppApiJsonContext.Default.AcceptMessage));
        Assert.Throws<ProtocolViolationException>(() => FrameIo.Parse("null"u8.ToArray(), AppApiJsonContext.Default.AcceptMessage));
    }

    [Fact]
    public async Task Fuzz_RandomStreams_FrameOrViolationNeverOtherErrors()
    {
        var random = new Random(5);
        for (var i = 0; i < 2000; i++)
        {
            var data = new byte[random.Next(0, 40)];
            random.NextBytes(data);
            if (data.Length > 4)
            {
                data[0] = data[1] = 0;
                data[2] = (byte)(random.Next(2) * data[2]);
            }

            try
            {
                var frame = await FrameIo.ReadFrameAsync(new TrickleStream(data, 1 + random.Next(5)), 300, CancellationToken.None);
                if (frame is { } f)
                {
                    try
                    {
                        FrameIo.Parse(f.Payload, AppApiJsonContext.Default.DialMessage);
                    }
                    catch (ProtocolViolationException)
                    {
                    }
                }
            }
            catch (ProtocolViolationException)
            {
            }
        }
    }
}
