using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Protocol;
using Skywire.Protocol.Framing;
using Skywire.Protocol.Messenger;

namespace Skywire.IntegrationTests.Messenger;

/// <summary>
/// A hand-driven messenger client: runs the Noise XK handshake itself (with any static key pair, even one that lies
/// about its public key) and then writes arbitrary plaintext bytes inside valid records, to test the server's edges.
/// </summary>
internal sealed class RawMessengerPeer : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private NoiseTransport? _transport;

    private RawMessengerPeer(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
    }

    public byte[] HandshakeHash => _transport?.HandshakeHash ?? [];

    /// <param name="endPoint">The messenger.</param>
    /// <param name="receiveBuffer">When set, the socket's SO_RCVBUF (a small one makes a client that does not read back up at once).</param>
    public static async Task<RawMessengerPeer> ConnectAsync(IPEndPoint endPoint, int? receiveBuffer = null)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        if (receiveBuffer is { } size)
        {
            socket.ReceiveBufferSize = size;
        }

        await socket.ConnectAsync(endPoint);
        return new RawMessengerPeer(socket);
    }

    /// <summary>Runs the initiator side of the handshake with <paramref name="local"/> as the static key.</summary>
    public async Task HandshakeAsync(NoiseKeyPair local, PubKey server)
    {
        var algorithm = AeadKey.PreferredAlgorithm;
        byte[] preamble = [.. "SWC\x01"u8, (byte)algorithm];
        await _stream.WriteAsync(preamble);
        using var hs = new HandshakeState(HandshakePattern.XK, true, Secp256k1Dh.Instance, algorithm, [.. Encoding.ASCII.GetBytes(MessengerProtocol.Prologue), .. preamble], local, server.ToArray());
        await WriteHandshakeAsync(hs);
        var header = new byte[2];
        await _stream.ReadExactlyAsync(header);
        var message = new byte[BinaryPrimitives.ReadUInt16BigEndian(header)];
        await _stream.ReadExactlyAsync(message);
        hs.ReadMessage(message, new byte[message.Length]);
        await WriteHandshakeAsync(hs);
        _transport = hs.Split();
    }

    /// <summary>Sends a correctly signed hello and reads the answer frame's opcode.</summary>
    public async Task<byte> HelloAsync(KeyPair signer) => (await HelloFrameAsync(signer, MessengerProtocol.Version))[4];

    /// <summary>Sends a correctly signed hello of <paramref name="version"/> (as another messenger of the store when <paramref name="peer"/>) and reads the whole answer frame.</summary>
    public async Task<byte[]> HelloFrameAsync(KeyPair signer, int version, bool? peer = null)
    {
        var input = System.Security.Cryptography.SHA256.HashData([.. Encoding.ASCII.GetBytes(MessengerProtocol.HelloSignatureContext), .. HandshakeHash]);
        var hello = new MessengerHello { Version = version, Signature = Convert.ToHexStringLower(signer.Sign(input)), Peer = peer };
        await WritePlainAsync(FrameCodec.Encode((byte)MessengerOpcode.Hello, 1, JsonSerializer.SerializeToUtf8Bytes(hello, MessengerJsonContext.Default.MessengerHello)));
        return await ReadPlainAsync();
    }

    /// <summary>Encrypts <paramref name="plaintext"/> into one record and writes it.</summary>
    public async Task WritePlainAsync(byte[] plaintext)
    {
        var record = new byte[2 + plaintext.Length + AeadKey.TagLength];
        var n = _transport!.Send.EncryptWithAd([], plaintext, record.AsSpan(2));
        BinaryPrimitives.WriteUInt16BigEndian(record, (ushort)n);
        await _stream.WriteAsync(record);
    }

    /// <summary>Writes raw bytes to the socket (outside any record).</summary>
    public async Task WriteRawAsync(byte[] bytes) => await _stream.WriteAsync(bytes);

    /// <summary>Reads one record's plaintext.</summary>
    public async Task<byte[]> ReadPlainAsync()
    {
        var header = new byte[2];
        await _stream.ReadExactlyAsync(header);
        var record = new byte[BinaryPrimitives.ReadUInt16BigEndian(header)];
        await _stream.ReadExactlyAsync(record);
        var plain = new byte[record.Length];
        var n = _transport!.Receive.DecryptWithAd([], record, plain);
        return plain[..n];
    }

    /// <summary>Reads and discards until the server closes the connection; true if it did within the timeout.</summary>
    public async Task<bool> WaitClosedAsync()
    {
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(MessengerHarness.Timeout);
        try
        {
            while (await _stream.ReadAsync(buffer, cts.Token) > 0)
            {
            }

            return true;
        }
        catch (IOException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private async Task WriteHandshakeAsync(HandshakeState hs)
    {
        var message = new byte[2 + hs.NextMessageLength(0)];
        var n = hs.WriteMessage([], message.AsSpan(2));
        BinaryPrimitives.WriteUInt16BigEndian(message, (ushort)n);
        await _stream.WriteAsync(message.AsMemory(0, 2 + n));
    }

    public ValueTask DisposeAsync()
    {
        _transport?.Dispose();
        _stream.Dispose();
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>A static key that claims one public key while computing DH with another secret: an impostor.</summary>
internal sealed class ImpostorKeyPair : NoiseKeyPair
{
    private readonly byte[] _claimed;
    private readonly NoiseKeyPair _real;

    public ImpostorKeyPair(PubKey claimed, KeyPair real)
    {
        _claimed = claimed.ToArray();
        _real = Secp256k1Dh.FromKeyPair(real);
    }

    public override ReadOnlySpan<byte> PublicKey => _claimed;

    public override void Agree(ReadOnlySpan<byte> remotePublicKey, Span<byte> output) => _real.Agree(remotePublicKey, output);

    protected override void Dispose(bool disposing) => _real.Dispose();
}
