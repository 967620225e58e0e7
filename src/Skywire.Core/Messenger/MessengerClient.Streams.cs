using System.Text;
using Skywire.Core.Crypto;
using Skywire.Core.Crypto.Noise;
using Skywire.Core.Messenger.Internal;
using Skywire.Protocol;
using Skywire.Protocol.Framing;
using Skywire.Protocol.Messenger;

namespace Skywire.Core.Messenger;

public sealed partial class MessengerClient
{
    /// <summary>
    /// Opens a relayed stream to <paramref name="to"/>, which must be connected to the same messenger. The two ends run
    /// Noise_KK (each knows the other's key), so the messenger relays only ciphertext; <paramref name="openData"/>
    /// (e.g. the target app's name) travels encrypted in the first handshake message.
    /// </summary>
    /// <exception cref="MessengerException">NotFound (not connected), Refused, Unavailable (no answer in time).</exception>
    public async Task<MessengerStream> OpenStreamAsync(PubKey to, ReadOnlyMemory<byte> openData, CancellationToken cancellationToken = default)
    {
        var algorithm = AeadKey.PreferredAlgorithm;
        var local = Secp256k1Dh.FromKeyPair(_key);
        var hs = new HandshakeState(HandshakePattern.KK, true, Secp256k1Dh.Instance, algorithm, StreamPrologue(algorithm), local, to.ToArray());
        var message = new byte[1 + hs.NextMessageLength(openData.Length)];
        message[0] = (byte)algorithm;
        var n = hs.WriteMessage(openData.Span, message.AsSpan(1));
        if (1 + n > MessengerProtocol.MaxStreamHandshake)
        {
            hs.Dispose();
            local.Dispose();
            throw new ArgumentException("open data is too large", nameof(openData));
        }

        var tcs = new TaskCompletionSource<MessengerStream>(TaskCreationOptions.RunContinuationsAsynchronously);
        var id = _link.RegisterPending((op, body) =>
        {
            // Runs inline on the read loop, so the stream exists before the peer's first record is dispatched.
            try
            {
                if (op == (byte)MessengerOpcode.Error)
                {
                    tcs.TrySetException(MessengerLink.ToException(body));
                    return;
                }

                var circuit = MessengerFrames.ReadCircuit(body, out var answer);
                if (tcs.Task.IsCompleted)
                {
                    // We gave up waiting: close the circuit the peer just accepted.
                    SendFrame((byte)MessengerOpcode.StreamClose, MessengerFrames.StreamClose(circuit, StreamCloseReason.Aborted), []);
                    return;
                }

                var payload = new byte[answer.Length];
                hs.ReadMessage(answer, payload);
                var stream = new MessengerStream(this, circuit, to, openData.ToArray(), hs.Split(), _limits.StreamWindow);
                _streams[circuit] = stream;
                if (!tcs.TrySetResult(stream))
                {
                    _streams.TryRemove(circuit, out _);
                    stream.Abort();
                }
            }
            catch (NoiseException)
            {
                tcs.TrySetException(new MessengerException(MessengerErrorCode.Forbidden, $"the stream handshake with {to} failed: the peer did not prove its key"));
            }
            catch (ProtocolViolationException ex)
            {
                tcs.TrySetException(new MessengerException(MessengerErrorCode.Internal, ex.Message));
            }
            finally
            {
                hs.Dispose();
                local.Dispose();
            }
        });
        _link.Enqueue((byte)MessengerOpcode.StreamOpen, id, MessengerFrames.KeyAndBody(to, message.AsSpan(0, 1 + n)));
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(_options.RequestTimeout);
        try
        {
            return await tcs.Task.WaitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            tcs.TrySetCanceled(cancellationToken);
            if (cancellationToken.IsCancellationRequested)
            {
                throw;
            }

            throw new MessengerException(MessengerErrorCode.Unavailable, $"{to} did not accept the stream in time");
        }
    }

    /// <summary>Waits for a stream another key opened to us.</summary>
    public ValueTask<MessengerStream> AcceptStreamAsync(CancellationToken cancellationToken = default) => _accepts.Reader.ReadAsync(cancellationToken);

    private void OnStreamIncoming(uint requestId, ReadOnlySpan<byte> payload)
    {
        MessengerFrames.ReadStreamIncoming(payload, out var circuit, out var from, out var handshake);
        if (handshake.Length < 1)
        {
            _link.RespondError(requestId, MessengerErrorCode.BadRequest, "empty stream handshake");
            return;
        }

        var algorithm = (AeadAlgorithmId)handshake[0];
        if (!Enum.IsDefined(algorithm) || !AeadKey.IsSupported(algorithm))
        {
            _link.RespondError(requestId, MessengerErrorCode.Refused, $"AEAD {handshake[0]} is not supported here");
            return;
        }

        using var local = Secp256k1Dh.FromKeyPair(_key);
        using var hs = new HandshakeState(HandshakePattern.KK, false, Secp256k1Dh.Instance, algorithm, StreamPrologue(algorithm), local, from.ToArray());
        byte[] openData;
        try
        {
            var buffer = new byte[handshake.Length];
            var n = hs.ReadMessage(handshake[1..], buffer);
            openData = buffer.AsSpan(0, n).ToArray();
        }
        catch (NoiseException)
        {
            Log.StreamRefused(_logger, from, "its handshake does not prove its key");
            _link.RespondError(requestId, MessengerErrorCode.Forbidden, "stream handshake failed");
            return;
        }

        if (_options.AcceptFilter is { } filter && !filter(from, openData))
        {
            Log.StreamRefused(_logger, from, "not accepted here");
            _link.RespondError(requestId, MessengerErrorCode.Refused, "the peer does not accept this stream");
            return;
        }

        var answer = new byte[hs.NextMessageLength(0)];
        hs.WriteMessage([], answer);
        var stream = new MessengerStream(this, circuit, from, openData, hs.Split(), _limits.StreamWindow);
        _streams[circuit] = stream;

        // Answer before the application can see the stream: its first record must follow the answer on the wire.
        _link.Enqueue((byte)(MessengerOpcode.StreamIncoming | (MessengerOpcode)FrameCodec.ResponseBit), requestId, answer);
        if (!_accepts.Writer.TryWrite(stream))
        {
            Log.StreamRefused(_logger, from, "accept backlog full");
            stream.Abort();
        }
    }

    private static byte[] StreamPrologue(AeadAlgorithmId algorithm) => [.. Encoding.ASCII.GetBytes(MessengerProtocol.StreamPrologue), (byte)algorithm];
}
