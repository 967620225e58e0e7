using System.Buffers;
using BenchmarkDotNet.Attributes;
using Skywire.TestKit.Buffers;
using Viscript.Signal.Protocol;

namespace Skywire.Benchmarks.Signal;

/// <summary>Signal frame encode/decode (pure codec, no I/O).</summary>
[MemoryDiagnoser]
public class SignalCodecBenchmarks
{
    private readonly ArrayBufferWriter<byte> _writer = new(16 * 1024);
    private byte[] _topReply = [];
    private byte[] _pingFrame = [];
    private byte[] _topFrame = [];
    private ReadOnlySequence<byte> _topFragmented;

    [GlobalSetup]
    public void Setup()
    {
        // A TOP reply about the size our client sends (Go's is 3.7-9.3 KB).
        _topReply = System.Text.Encoding.UTF8.GetBytes("{\"Alloc\":123456789,\"TotalAlloc\":987654321,\"Sys\":44444444," +
            string.Join(',', Enumerable.Range(0, 40).Select(i => $"\"Field{i}\":{i * 1234567}")) + "}");
        _pingFrame = Encode(w => SignalFrameWriter.WriteNormal(w, 2, SignalOps.Ping, "null"u8));
        _topFrame = Encode(w => SignalFrameWriter.WriteNormal(w, 3, SignalOps.Top | SignalOps.ReplyFlag, _topReply));
        _topFragmented = FragmentedSequence.Split(_topFrame, [.. Enumerable.Range(1, _topFrame.Length / 512).Select(i => i * 512)]);
    }

    [Benchmark(Description = "encode PING request (14 B)")]
    public int EncodePing()
    {
        _writer.ResetWrittenCount();
        SignalFrameWriter.WriteNormal(_writer, 2, SignalOps.Ping, "null"u8);
        return _writer.WrittenCount;
    }

    [Benchmark(Description = "encode TOP reply (~1 KB)")]
    public int EncodeTop()
    {
        _writer.ResetWrittenCount();
        SignalFrameWriter.WriteNormal(_writer, 3, SignalOps.Top | SignalOps.ReplyFlag, _topReply);
        return _writer.WrittenCount;
    }

    [Benchmark(Description = "decode PING request")]
    public byte DecodePing()
    {
        var buffer = new ReadOnlySequence<byte>(_pingFrame);
        SignalFrameReader.TryReadFrame(ref buffer, 1 << 20, out var frame);
        return frame.Op;
    }

    [Benchmark(Description = "decode TOP reply, 1 segment")]
    public long DecodeTop()
    {
        var buffer = new ReadOnlySequence<byte>(_topFrame);
        SignalFrameReader.TryReadFrame(ref buffer, 1 << 20, out var frame);
        return frame.Body.Length;
    }

    [Benchmark(Description = "decode TOP reply, 512 B segments")]
    public long DecodeTopFragmented()
    {
        var buffer = _topFragmented;
        SignalFrameReader.TryReadFrame(ref buffer, 1 << 20, out var frame);
        return frame.Body.Length;
    }

    private static byte[] Encode(Action<ArrayBufferWriter<byte>> write)
    {
        var writer = new ArrayBufferWriter<byte>();
        write(writer);
        return writer.WrittenSpan.ToArray();
    }
}
