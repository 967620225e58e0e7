using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Viscript.Signal.Tests;

/// <summary>A frame as a test reads it, decoded without the library's codec.</summary>
internal sealed record RawFrame(byte Type, uint Seq, ulong Stamp, byte[] Body)
{
    public byte Op => Body[0];

    public string Json => Encoding.UTF8.GetString(Body, 1, Body.Length - 1);
}

/// <summary>A raw TCP peer that speaks the original Go bytes by hand (plays the Go client or the Go server).</summary>
internal sealed class RawPeer : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly byte[] _buffer = new byte[1 << 20];
    private int _start;
    private int _end;
    private uint _seq;

    private RawPeer(Socket socket)
    {
        _socket = socket;
        _socket.NoDelay = true;
    }

    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    public Socket Socket => _socket;

    public static async Task<RawPeer> ConnectAsync(IPEndPoint endPoint)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endPoint);
        return new RawPeer(socket);
    }

    public static RawPeer FromAccepted(Socket socket) => new(socket);

    public Task SendAsync(byte[] bytes) => _socket.SendAsync(bytes.AsMemory(), SocketFlags.None).AsTask();

    public static byte[] Normal(uint seq, byte op, string json)
    {
        var body = Encoding.UTF8.GetBytes(json);
        var frame = new byte[10 + body.Length];
        frame[0] = 0x01;
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), seq);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(5), (uint)(1 + body.Length));
        frame[9] = op;
        body.CopyTo(frame, 10);
        return frame;
    }

    public static byte[] Ack(uint seq)
    {
        var frame = new byte[5];
        frame[0] = 0x80;
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), seq);
        return frame;
    }

    public static byte[] Stamp(byte type, ulong stamp)
    {
        var frame = new byte[9];
        frame[0] = type;
        BinaryPrimitives.WriteUInt64BigEndian(frame.AsSpan(1), stamp);
        return frame;
    }

    /// <summary>Sends a NORMAL frame with the next sequence number.</summary>
    public Task SendNormalAsync(byte op, string json) => SendAsync(Normal(++_seq, op, json));

    /// <summary>Reads exactly <paramref name="count"/> bytes (null when the peer closed first).</summary>
    public async Task<byte[]?> ReadExactAsync(int count)
    {
        using var timeout = new CancellationTokenSource(Deadline);
        while (_end - _start < count)
        {
            if (_start > 0 && _end == _buffer.Length)
            {
                Array.Copy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }

            var read = await _socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, timeout.Token);
            if (read == 0)
            {
                return null;
            }

            _end += read;
        }

        var result = _buffer.AsSpan(_start, count).ToArray();
        _start += count;
        return result;
    }

    /// <summary>Reads one frame; null when the peer closed.</summary>
    public async Task<RawFrame?> ReadFrameAsync()
    {
        var type = await ReadExactAsync(1);
        if (type is null)
        {
            return null;
        }

        switch (type[0])
        {
            case 0x01:
                var header = await ReadExactAsync(8) ?? throw new EndOfStreamException();
                var length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4));
                var body = length == 0 ? [] : await ReadExactAsync((int)length) ?? throw new EndOfStreamException();
                return new RawFrame(0x01, BinaryPrimitives.ReadUInt32BigEndian(header), 0, body);
            case 0x80:
                var seq = await ReadExactAsync(4) ?? throw new EndOfStreamException();
                return new RawFrame(0x80, BinaryPrimitives.ReadUInt32BigEndian(seq), 0, []);
            case 0x81:
            case 0x82:
                var stamp = await ReadExactAsync(8) ?? throw new EndOfStreamException();
                return new RawFrame(type[0], 0, BinaryPrimitives.ReadUInt64BigEndian(stamp), []);
            default:
                throw new InvalidDataException($"unexpected frame type 0x{type[0]:x2}");
        }
    }

    /// <summary>Reads frames, skipping ACKs, until a NORMAL frame arrives.</summary>
    public async Task<RawFrame> ReadNormalAsync()
    {
        while (true)
        {
            var frame = await ReadFrameAsync() ?? throw new EndOfStreamException("peer closed");
            if (frame.Type == 0x01)
            {
                return frame;
            }
        }
    }

    /// <summary>Waits until the peer closes the connection (ignoring anything it still sends).</summary>
    public async Task<bool> WaitClosedAsync()
    {
        using var timeout = new CancellationTokenSource(Deadline);
        var scratch = new byte[4096];
        try
        {
            while (await _socket.ReceiveAsync(scratch, SocketFlags.None, timeout.Token) > 0)
            {
            }

            return true;
        }
        catch (SocketException)
        {
            return true; // reset counts as closed
        }
    }

    /// <summary>Registers like the Go client: REG, then expects the ACK and the REG reply, and acks that.</summary>
    public async Task<RawFrame> RegisterAsync(ulong id, string? extra = null)
    {
        await SendNormalAsync(0x00, extra is null ? $"{{\"Id\":{id}}}" : $"{{\"Id\":{id},{extra}}}");
        var reply = await ReadNormalAsync();
        await SendAsync(Ack(reply.Seq));
        return reply;
    }

    public ValueTask DisposeAsync()
    {
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}
