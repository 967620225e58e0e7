using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Protocol;
using ProtocolViolationException = Skywire.Protocol.Framing.ProtocolViolationException;

namespace Skywire.Core.Channels;

/// <summary>
/// The Noise wrapper of every control connection (docs/protocol.md §4.1), the one class that knows about Noise:
/// a preamble (<c>"SWC" 0x01 | aead id</c>), a Noise_XK_secp256k1 handshake (the client pins the manager's static key;
/// the manager learns the client's), then records of <c>u16 length | AEAD ciphertext</c> carrying the plaintext
/// byte stream in which control frames live. A record that fails authentication is a protocol violation.
/// </summary>
public sealed class NoiseStream : Stream
{
    /// <summary>Largest plaintext in one record (a Noise message is at most 65535 bytes including the 16-byte tag).</summary>
    public const int MaxRecordPlaintext = HandshakeState.MaxMessageLength - AeadKey.TagLength;

    private static readonly byte[] Magic = "SWC\x01"u8.ToArray();

    private readonly Stream _inner;
    private readonly NoiseTransport _transport;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly byte[] _readRecord = new byte[HandshakeState.MaxMessageLength];
    private readonly byte[] _plain = new byte[MaxRecordPlaintext];
    private int _plainStart;
    private int _plainEnd;
    private int _disposed;

    private NoiseStream(Stream inner, NoiseTransport transport)
    {
        _inner = inner;
        _transport = transport;
        RemoteKey = PubKey.Read(transport.RemoteStaticKey);
    }

    /// <summary>The peer's static key, proven by the handshake.</summary>
    public PubKey RemoteKey { get; }

    /// <summary>The final handshake hash (channel binding for signatures).</summary>
    public ReadOnlySpan<byte> HandshakeHash => _transport.HandshakeHash;

    /// <summary>Bytes a client signs in its hello: SHA-256(context || handshake hash).</summary>
    public byte[] HelloSigningInput(string context)
    {
        var ctx = Encoding.ASCII.GetBytes(context);
        return SHA256.HashData([.. ctx, .. _transport.HandshakeHash]);
    }

    /// <summary>Client side: handshake as initiator against the pinned <paramref name="remote"/> key.</summary>
    /// <exception cref="NoiseException">The handshake failed; when the responder just hangs up, the pinned key is most likely wrong.</exception>
    public static async Task<NoiseStream> ConnectAsync(Stream inner, KeyPair local, PubKey remote, string prologue, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(inner);
        const string closed = "the server closed the connection during the handshake: its key is not the pinned key, it is not the Skywire server expected, or it is at its connection limit (busy: try again)";
        var algorithm = AeadKey.PreferredAlgorithm;
        byte[] preamble = [.. Magic, (byte)algorithm];
        using var staticKey = Secp256k1Dh.FromKeyPair(local);
        using var hs = new HandshakeState(HandshakePattern.XK, true, Secp256k1Dh.Instance, algorithm, Prologue(prologue, preamble), staticKey, remote.ToArray());
        try
        {
            await inner.WriteAsync(preamble, cancellationToken);
            await WriteHandshakeAsync(inner, hs, cancellationToken);
            await ReadHandshakeAsync(inner, hs, closed, cancellationToken);
            await WriteHandshakeAsync(inner, hs, cancellationToken);
        }
        catch (IOException ex)
        {
            // A reset while writing is a hang-up too (a listener that closed the connection at once, at its cap):
            // told apart from a failed message like a hang-up while reading, never thrown as a bare IOException.
            throw new NoiseException(closed, ex);
        }

        return new NoiseStream(inner, hs.Split());
    }

    /// <summary>Manager side: handshake as responder; the client's key is learned from the handshake.</summary>
    public static async Task<NoiseStream> AcceptAsync(Stream inner, KeyPair local, string prologue, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(inner);
        var preamble = new byte[Magic.Length + 1];
        await inner.ReadExactlyAsync(preamble, cancellationToken);
        if (!preamble.AsSpan(0, Magic.Length).SequenceEqual(Magic))
        {
            throw new ProtocolViolationException("not a Skywire control connection (bad preamble)");
        }

        var algorithm = (AeadAlgorithmId)preamble[^1];
        if (!Enum.IsDefined(algorithm) || !AeadKey.IsSupported(algorithm))
        {
            throw new ProtocolViolationException($"AEAD {preamble[^1]} is not supported here");
        }

        using var staticKey = Secp256k1Dh.FromKeyPair(local);
        using var hs = new HandshakeState(HandshakePattern.XK, false, Secp256k1Dh.Instance, algorithm, Prologue(prologue, preamble), staticKey, []);
        await ReadHandshakeAsync(inner, hs, "connection closed during the handshake", cancellationToken);
        await WriteHandshakeAsync(inner, hs, cancellationToken);
        await ReadHandshakeAsync(inner, hs, "connection closed during the handshake", cancellationToken);
        return new NoiseStream(inner, hs.Split());
    }

    private static byte[] Prologue(string prologue, byte[] preamble) => [.. Encoding.ASCII.GetBytes(prologue), .. preamble];

    private static async Task WriteHandshakeAsync(Stream inner, HandshakeState hs, CancellationToken cancellationToken)
    {
        var message = new byte[2 + hs.NextMessageLength(0)];
        var n = hs.WriteMessage([], message.AsSpan(2));
        BinaryPrimitives.WriteUInt16BigEndian(message, (ushort)n);
        await inner.WriteAsync(message.AsMemory(0, 2 + n), cancellationToken);
        await inner.FlushAsync(cancellationToken);
    }

    private static async Task ReadHandshakeAsync(Stream inner, HandshakeState hs, string closedMessage, CancellationToken cancellationToken)
    {
        var header = new byte[2];
        try
        {
            await inner.ReadExactlyAsync(header, cancellationToken);
            var length = BinaryPrimitives.ReadUInt16BigEndian(header);
            var message = new byte[length];
            await inner.ReadExactlyAsync(message, cancellationToken);
            var payload = new byte[length];
            hs.ReadMessage(message, payload);
        }
        catch (Exception ex) when (ex is EndOfStreamException or IOException)
        {
            // The cause stays inside: a hang-up (the usual sign of a wrong pinned key) is told apart from a failed message.
            throw new NoiseException(closedMessage, ex);
        }
    }

    /// <inheritdoc />
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_plainStart == _plainEnd)
        {
            if (!await ReadRecordAsync(cancellationToken))
            {
                return 0;
            }
        }

        var n = Math.Min(buffer.Length, _plainEnd - _plainStart);
        _plain.AsSpan(_plainStart, n).CopyTo(buffer.Span);
        _plainStart += n;
        return n;
    }

    private async Task<bool> ReadRecordAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var header = _readRecord.AsMemory(0, 2);
            var got = await _inner.ReadAtLeastAsync(header, 2, throwOnEndOfStream: false, cancellationToken);
            if (got == 0)
            {
                return false;
            }

            if (got < 2)
            {
                throw new ProtocolViolationException("connection ended inside a record header");
            }

            var length = BinaryPrimitives.ReadUInt16BigEndian(_readRecord);
            if (length < AeadKey.TagLength)
            {
                throw new ProtocolViolationException($"record of {length} bytes is shorter than a tag");
            }

            if (await _inner.ReadAtLeastAsync(_readRecord.AsMemory(0, length), length, throwOnEndOfStream: false, cancellationToken) < length)
            {
                throw new ProtocolViolationException("connection ended inside a record");
            }

            int n;
            try
            {
                n = _transport.Receive.DecryptWithAd([], _readRecord.AsSpan(0, length), _plain);
            }
            catch (NoiseException)
            {
                throw new ProtocolViolationException("record failed authentication (forged or corrupted)");
            }

            _plainStart = 0;
            _plainEnd = n;
            if (n > 0)
            {
                return true;
            }
        }
    }

    /// <inheritdoc />
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await _writeLock.WaitAsync(cancellationToken);
        var record = ArrayPool<byte>.Shared.Rent(2 + HandshakeState.MaxMessageLength);
        try
        {
            while (!buffer.IsEmpty)
            {
                var chunk = buffer[..Math.Min(buffer.Length, MaxRecordPlaintext)];
                var n = _transport.Send.EncryptWithAd([], chunk.Span, record.AsSpan(2));
                BinaryPrimitives.WriteUInt16BigEndian(record, (ushort)n);
                await _inner.WriteAsync(record.AsMemory(0, 2 + n), cancellationToken);
                buffer = buffer[chunk.Length..];
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(record);
            _writeLock.Release();
        }
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() => _inner.Flush();
    public override Task FlushAsync(CancellationToken cancellationToken) => _inner.FlushAsync(cancellationToken);
    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing && Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _inner.Dispose();
            _transport.Dispose();
        }

        base.Dispose(disposing);
    }
}
