namespace Skywire.Core.Crypto.Noise;

/// <summary>The two transport ciphers after a completed handshake.</summary>
/// <param name="Send">Encrypts what this side sends.</param>
/// <param name="Receive">Decrypts what this side receives.</param>
/// <param name="HandshakeHash">The final handshake hash h: a transcript identifier to bind signatures to (channel binding).</param>
/// <param name="RemoteStaticKey">The peer's static public key (authenticated by the handshake).</param>
public sealed record NoiseTransport(CipherState Send, CipherState Receive, byte[] HandshakeHash, byte[] RemoteStaticKey) : IDisposable
{
    /// <summary>Releases both keys.</summary>
    public void Dispose()
    {
        Send.Dispose();
        Receive.Dispose();
    }
}

/// <summary>
/// Noise HandshakeState (spec §5.3), independent of the curve (<see cref="NoiseDh"/>) and the AEAD
/// (<see cref="AeadAlgorithmId"/>); the hash is SHA-256. Protocol name:
/// <c>Noise_{pattern}_{dh}_{AESGCM|ChaChaPoly}_SHA256</c>. No PSK modifiers.
/// </summary>
/// <remarks>
/// Not thread-safe. Any failed <see cref="ReadMessage"/> leaves the state unusable (a handshake
/// is never resumed after a bad message): the caller discards it.
/// </remarks>
public sealed class HandshakeState : IDisposable
{
    /// <summary>Largest Noise message (spec §3).</summary>
    public const int MaxMessageLength = 65535;

    private readonly HandshakePattern _pattern;
    private readonly NoiseDh _dh;
    private readonly SymmetricState _symmetric;
    private readonly NoiseKeyPair? _s;
    private NoiseKeyPair? _e;
    private readonly bool _ownsEphemeral;
    private byte[]? _rs;
    private byte[]? _re;
    private int _messageIndex;
    private bool _failed;

    /// <summary>Creates a handshake.</summary>
    /// <param name="pattern">XK, IK, KK, XX or NN.</param>
    /// <param name="initiator">True on the side that sends the first message.</param>
    /// <param name="dh">The curve.</param>
    /// <param name="algorithm">The AEAD (part of the protocol name, so both sides must agree).</param>
    /// <param name="prologue">Bytes both sides must agree on (versions, negotiated options); mixed into the hash.</param>
    /// <param name="localStatic">Our static key pair, when the pattern uses one. Not disposed by this object.</param>
    /// <param name="remoteStatic">The peer's static public key, when the pattern has it as a pre-message.</param>
    /// <param name="localEphemeral">A fixed ephemeral key: for test vectors only. Null: generated.</param>
    public HandshakeState(
        HandshakePattern pattern,
        bool initiator,
        NoiseDh dh,
        AeadAlgorithmId algorithm,
        ReadOnlySpan<byte> prologue,
        NoiseKeyPair? localStatic,
        ReadOnlySpan<byte> remoteStatic,
        NoiseKeyPair? localEphemeral = null)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        ArgumentNullException.ThrowIfNull(dh);
        _pattern = pattern;
        _dh = dh;
        IsInitiator = initiator;
        _s = localStatic;
        _e = localEphemeral;
        _ownsEphemeral = localEphemeral is null;
        if (!remoteStatic.IsEmpty)
        {
            if (remoteStatic.Length != dh.PublicKeyLength)
            {
                throw new ArgumentException($"a {dh.Name} public key is {dh.PublicKeyLength} bytes", nameof(remoteStatic));
            }

            _rs = remoteStatic.ToArray();
        }

        ProtocolName = $"Noise_{pattern.Name}_{dh.Name}_{AeadKey.NoiseName(algorithm)}_SHA256";
        _symmetric = new SymmetricState(ProtocolName, algorithm);
        _symmetric.MixHash(prologue);

        // Pre-messages: the initiator's first, then the responder's (spec §7.1).
        MixPreMessage(pattern.InitiatorPreMessage, ours: initiator);
        MixPreMessage(pattern.ResponderPreMessage, ours: !initiator);
    }

    /// <summary>The full Noise protocol name.</summary>
    public string ProtocolName { get; }

    /// <summary>True on the side that sent the first message.</summary>
    public bool IsInitiator { get; }

    /// <summary>True once every message of the pattern was written or read.</summary>
    public bool IsCompleted => _messageIndex >= _pattern.Messages.Count;

    /// <summary>True when the next step is <see cref="WriteMessage"/>.</summary>
    public bool IsMyTurn => !IsCompleted && (_messageIndex % 2 == 0) == IsInitiator;

    /// <summary>The current handshake hash.</summary>
    public ReadOnlySpan<byte> HandshakeHash => _symmetric.Hash;

    /// <summary>The peer's static key once known (pre-message or received), else empty.</summary>
    public ReadOnlySpan<byte> RemoteStaticKey => _rs;

    /// <summary>Bytes <see cref="WriteMessage"/> will produce for a payload of <paramref name="payloadLength"/> bytes.</summary>
    public int NextMessageLength(int payloadLength)
    {
        ThrowIfDone();
        var hasKey = _symmetric.Cipher.HasKey;
        var length = 0;
        foreach (var token in _pattern.Messages[_messageIndex])
        {
            switch (token)
            {
                case NoiseToken.E:
                    length += _dh.PublicKeyLength;
                    break;
                case NoiseToken.S:
                    length += _dh.PublicKeyLength + (hasKey ? AeadKey.TagLength : 0);
                    break;
                default:
                    hasKey = true;
                    break;
            }
        }

        return length + payloadLength + (hasKey ? AeadKey.TagLength : 0);
    }

    /// <summary>Writes the next handshake message carrying <paramref name="payload"/>. Returns bytes written.</summary>
    /// <exception cref="InvalidOperationException">Not our turn, or the handshake is over or failed.</exception>
    public int WriteMessage(ReadOnlySpan<byte> payload, Span<byte> message)
    {
        ThrowIfDone();
        if (!IsMyTurn)
        {
            throw new InvalidOperationException("It is the peer's turn to send a handshake message.");
        }

        var needed = NextMessageLength(payload.Length);
        if (needed > MaxMessageLength || message.Length < needed)
        {
            throw new ArgumentException($"the handshake message needs {needed} bytes", nameof(message));
        }

        var offset = 0;
        foreach (var token in _pattern.Messages[_messageIndex])
        {
            switch (token)
            {
                case NoiseToken.E:
                    _e ??= _dh.GenerateKeyPair();
                    _e.PublicKey.CopyTo(message[offset..]);
                    _symmetric.MixHash(_e.PublicKey);
                    offset += _dh.PublicKeyLength;
                    break;
                case NoiseToken.S:
                    var s = _s ?? throw new InvalidOperationException("The pattern sends a static key but none was given.");
                    offset += _symmetric.EncryptAndHash(s.PublicKey, message[offset..]);
                    break;
                default:
                    MixDh(token);
                    break;
            }
        }

        offset += _symmetric.EncryptAndHash(payload, message[offset..]);
        _messageIndex++;
        return offset;
    }

    /// <summary>Reads the next handshake message; returns the payload length written to <paramref name="payload"/>.</summary>
    /// <exception cref="NoiseException">Too short, too long, invalid key or bad tag. The handshake is then dead.</exception>
    public int ReadMessage(ReadOnlySpan<byte> message, Span<byte> payload)
    {
        ThrowIfDone();
        if (IsMyTurn)
        {
            throw new InvalidOperationException("It is our turn to send a handshake message.");
        }

        if (message.Length > MaxMessageLength)
        {
            Fail();
            throw new NoiseException("handshake message longer than 65535 bytes");
        }

        try
        {
            var offset = 0;
            foreach (var token in _pattern.Messages[_messageIndex])
            {
                switch (token)
                {
                    case NoiseToken.E:
                        RequireBytes(message, offset, _dh.PublicKeyLength);
                        _re = message.Slice(offset, _dh.PublicKeyLength).ToArray();
                        _symmetric.MixHash(_re);
                        offset += _dh.PublicKeyLength;
                        break;
                    case NoiseToken.S:
                        var length = _dh.PublicKeyLength + (_symmetric.Cipher.HasKey ? AeadKey.TagLength : 0);
                        RequireBytes(message, offset, length);
                        var rs = new byte[_dh.PublicKeyLength];
                        _symmetric.DecryptAndHash(message.Slice(offset, length), rs);
                        _rs = rs;
                        offset += length;
                        break;
                    default:
                        MixDh(token);
                        break;
                }
            }

            var rest = message[offset..];
            if (_symmetric.Cipher.HasKey && rest.Length < AeadKey.TagLength)
            {
                throw new NoiseException("handshake message too short");
            }

            var payloadLength = rest.Length - (_symmetric.Cipher.HasKey ? AeadKey.TagLength : 0);
            if (payload.Length < payloadLength)
            {
                throw new NoiseException($"handshake payload of {payloadLength} bytes does not fit the buffer");
            }

            var written = _symmetric.DecryptAndHash(rest, payload);
            _messageIndex++;
            return written;
        }
        catch (NoiseException)
        {
            Fail();
            throw;
        }
    }

    /// <summary>Derives the transport ciphers. Only after <see cref="IsCompleted"/>.</summary>
    public NoiseTransport Split()
    {
        if (!IsCompleted || _failed)
        {
            throw new InvalidOperationException("The handshake is not complete.");
        }

        var (c1, c2) = _symmetric.Split();
        var hash = _symmetric.Hash.ToArray();
        var remote = _rs ?? [];
        return IsInitiator ? new NoiseTransport(c1, c2, hash, remote) : new NoiseTransport(c2, c1, hash, remote);
    }

    /// <summary>Releases the ephemeral key and the handshake cipher.</summary>
    public void Dispose()
    {
        if (_ownsEphemeral)
        {
            _e?.Dispose();
        }

        _symmetric.Dispose();
    }

    private void MixPreMessage(IReadOnlyList<NoiseToken> tokens, bool ours)
    {
        foreach (var token in tokens)
        {
            if (token != NoiseToken.S)
            {
                throw new NotSupportedException("Only static keys are supported as pre-messages.");
            }

            if (ours)
            {
                var s = _s ?? throw new ArgumentException($"Pattern {_pattern.Name} needs our static key.");
                _symmetric.MixHash(s.PublicKey);
            }
            else
            {
                var rs = _rs ?? throw new ArgumentException($"Pattern {_pattern.Name} needs the peer's static key in advance.");
                _symmetric.MixHash(rs);
            }
        }
    }

    private void MixDh(NoiseToken token)
    {
        // es: initiator's ephemeral with responder's static; se: the reverse (spec §7.3).
        var (local, remote) = token switch
        {
            NoiseToken.EE => (_e, _re),
            NoiseToken.SS => (_s, _rs),
            NoiseToken.ES => IsInitiator ? (_e, _rs) : (_s, _re),
            NoiseToken.SE => IsInitiator ? (_s, _re) : (_e, _rs),
            _ => throw new InvalidOperationException($"unexpected token {token}"),
        };

        if (local is null || remote is null)
        {
            throw new InvalidOperationException($"Token {token} needs keys that are not set.");
        }

        Span<byte> shared = stackalloc byte[_dh.OutputLength];
        local.Agree(remote, shared);
        _symmetric.MixKey(shared);
        System.Security.Cryptography.CryptographicOperations.ZeroMemory(shared);
    }

    private static void RequireBytes(ReadOnlySpan<byte> message, int offset, int count)
    {
        if (message.Length - offset < count)
        {
            throw new NoiseException("handshake message too short");
        }
    }

    private void Fail() => _failed = true;

    private void ThrowIfDone()
    {
        if (_failed)
        {
            throw new InvalidOperationException("The handshake failed earlier and cannot continue.");
        }

        if (IsCompleted)
        {
            throw new InvalidOperationException("The handshake is complete.");
        }
    }
}
