using Skywire.Protocol.Framing;
using Skywire.Protocol.Messenger;

namespace Skywire.Core.Messenger;

public sealed partial class MessengerServer
{
    /// <summary>
    /// A relayed stream between two connections. The messenger sees only circuit ids, record lengths and credits:
    /// records are sealed end to end. Each direction may have at most the window its receiver granted in flight, so the
    /// bytes queued here for a circuit are bounded; a sender that exceeds it breaks the protocol.
    /// </summary>
    private sealed class Circuit
    {
        public required ServerConnection Opener { get; init; }
        public required uint OpenerId { get; init; }
        public required ServerConnection Acceptor { get; init; }
        public required uint AcceptorId { get; init; }
        public bool Open { get; set; }

        /// <summary>Bytes the opener may still send (granted by the acceptor).</summary>
        public long OpenerCredit { get; set; }

        /// <summary>Bytes the acceptor may still send (granted by the opener).</summary>
        public long AcceptorCredit { get; set; }

        public (ServerConnection Peer, uint PeerId) Other(ServerConnection side) =>
            side == Opener ? (Acceptor, AcceptorId) : (Opener, OpenerId);
    }

    private void OnStreamOpen(ServerConnection opener, uint requestId, ReadOnlySpan<byte> payload)
    {
        MessengerFrames.ReadStreamOpen(payload, out var to, out var handshake);
        if (handshake.Length > MessengerProtocol.MaxStreamHandshake)
        {
            opener.Link.RespondError(requestId, MessengerErrorCode.BadRequest, $"stream handshake larger than {MessengerProtocol.MaxStreamHandshake} bytes");
            return;
        }

        if (StreamTargetOf(to, except: opener) is not { } acceptor)
        {
            opener.Link.RespondError(requestId, MessengerErrorCode.NotFound, Presence?.ServersOf(to).Length > 0
                ? $"{to} is connected to another messenger of this store; relayed streams do not cross messengers (messages and discovery do)"
                : $"{to} is not connected to this messenger");
            return;
        }

        Circuit circuit;
        lock (_circuitLock)
        {
            if (opener.Circuits.Count >= Options.MaxStreamsPerConnection || acceptor.Circuits.Count >= Options.MaxStreamsPerConnection)
            {
                opener.Link.RespondError(requestId, MessengerErrorCode.Unavailable, "too many open streams");
                return;
            }

            circuit = new Circuit
            {
                Opener = opener,
                OpenerId = opener.NextCircuitId(),
                Acceptor = acceptor,
                AcceptorId = acceptor.NextCircuitId(),
                OpenerCredit = Options.StreamWindow,
                AcceptorCredit = Options.StreamWindow,
            };
            opener.Circuits[circuit.OpenerId] = circuit;
            acceptor.Circuits[circuit.AcceptorId] = circuit;
        }

        ITimer? timer = null;
        var incomingId = acceptor.Link.RegisterPending((op, body) =>
        {
            timer?.Dispose();
            bool stillThere;
            lock (_circuitLock)
            {
                stillThere = opener.Circuits.TryGetValue(circuit.OpenerId, out var c) && c == circuit;
                if (stillThere && op == ((byte)MessengerOpcode.StreamIncoming | FrameCodec.ResponseBit))
                {
                    circuit.Open = true;
                    Interlocked.Increment(ref _streamsRelayed);
                }
            }

            if (!stillThere)
            {
                // The opener went away (or the open timed out) first: tell the acceptor its circuit is dead.
                acceptor.Link.Enqueue((byte)MessengerOpcode.StreamClose, 0, MessengerFrames.StreamClose(circuit.AcceptorId, StreamCloseReason.PeerGone));
                RemoveCircuit(circuit);
                return;
            }

            if (circuit.Open)
            {
                // Answer the opener inline, before any data the acceptor sends next is relayed: order is kept.
                opener.Link.Enqueue((byte)(MessengerOpcode.StreamOpen | (MessengerOpcode)FrameCodec.ResponseBit), requestId, MessengerFrames.CircuitAndBody(circuit.OpenerId, body));
            }
            else
            {
                RemoveCircuit(circuit);
                var (code, message) = op == (byte)MessengerOpcode.Error ? MessengerLinkError(body) : (MessengerErrorCode.Refused, "the peer refused the stream");
                opener.Link.RespondError(requestId, code, message);
            }
        });

        acceptor.Link.Enqueue((byte)MessengerOpcode.StreamIncoming, incomingId, MessengerFrames.StreamIncoming(circuit.AcceptorId, opener.Key, handshake));
        timer = _time.CreateTimer(_ =>
        {
            if (acceptor.Link.CancelPending(incomingId))
            {
                RemoveCircuit(circuit);
                acceptor.Link.Enqueue((byte)MessengerOpcode.StreamClose, 0, MessengerFrames.StreamClose(circuit.AcceptorId, StreamCloseReason.Aborted));
                opener.Link.RespondError(requestId, MessengerErrorCode.Unavailable, $"{to} did not accept the stream within {Options.StreamOpenTimeout.TotalSeconds:0} s");
            }
        }, null, Options.StreamOpenTimeout, Timeout.InfiniteTimeSpan);
    }

    private static (MessengerErrorCode, string) MessengerLinkError(ReadOnlySpan<byte> body)
    {
        var ex = Internal.MessengerLink.ToException(body);
        return (ex.Code, ex.Message);
    }

    private void OnStreamData(ServerConnection from, ReadOnlySpan<byte> payload)
    {
        var id = MessengerFrames.ReadCircuit(payload, out var record);
        ServerConnection peer;
        uint peerId;
        lock (_circuitLock)
        {
            if (!from.Circuits.TryGetValue(id, out var circuit))
            {
                from.Link.Enqueue((byte)MessengerOpcode.StreamClose, 0, MessengerFrames.StreamClose(id, StreamCloseReason.Unknown));
                return;
            }

            if (!circuit.Open)
            {
                throw new ProtocolViolationException($"stream data on circuit {id} before it was accepted");
            }

            var credit = from == circuit.Opener ? circuit.OpenerCredit -= record.Length : circuit.AcceptorCredit -= record.Length;
            if (credit < 0)
            {
                throw new ProtocolViolationException($"stream data on circuit {id} exceeds the window the peer granted");
            }

            (peer, peerId) = circuit.Other(from);
        }

        Interlocked.Add(ref _streamBytesRelayed, record.Length);
        Span<byte> prefix = stackalloc byte[MessengerProtocol.CircuitSize];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(prefix, peerId);
        peer.Link.Enqueue((byte)MessengerOpcode.StreamData, 0, prefix, record);
    }

    private void OnStreamCredit(ServerConnection from, ReadOnlySpan<byte> payload)
    {
        var id = MessengerFrames.ReadStreamCredit(payload, out var bytes);
        ServerConnection peer;
        uint peerId;
        lock (_circuitLock)
        {
            if (!from.Circuits.TryGetValue(id, out var circuit) || !circuit.Open)
            {
                return;
            }

            // The receiver grants its peer more room; a grant far beyond the window is a broken client.
            var credit = from == circuit.Opener ? circuit.AcceptorCredit += bytes : circuit.OpenerCredit += bytes;
            if (credit > 16L * Options.StreamWindow)
            {
                throw new ProtocolViolationException($"stream credit on circuit {id} grows beyond 16 windows");
            }

            (peer, peerId) = circuit.Other(from);
        }

        peer.Link.Enqueue((byte)MessengerOpcode.StreamCredit, 0, MessengerFrames.StreamCredit(peerId, bytes));
    }

    private void OnStreamClose(ServerConnection from, ReadOnlySpan<byte> payload)
    {
        var id = MessengerFrames.ReadStreamClose(payload, out var reason);
        Circuit? circuit;
        lock (_circuitLock)
        {
            if (!from.Circuits.TryGetValue(id, out circuit))
            {
                return;
            }
        }

        RemoveCircuit(circuit);
        var (peer, peerId) = circuit.Other(from);
        peer.Link.Enqueue((byte)MessengerOpcode.StreamClose, 0, MessengerFrames.StreamClose(peerId, reason == StreamCloseReason.Aborted ? StreamCloseReason.Aborted : StreamCloseReason.Closed));
    }

    private void RemoveCircuit(Circuit circuit)
    {
        lock (_circuitLock)
        {
            if (circuit.Opener.Circuits.TryGetValue(circuit.OpenerId, out var a) && a == circuit)
            {
                circuit.Opener.Circuits.Remove(circuit.OpenerId);
            }

            if (circuit.Acceptor.Circuits.TryGetValue(circuit.AcceptorId, out var b) && b == circuit)
            {
                circuit.Acceptor.Circuits.Remove(circuit.AcceptorId);
            }
        }
    }

    private void CloseCircuitsOf(ServerConnection connection)
    {
        List<Circuit> circuits;
        lock (_circuitLock)
        {
            circuits = [.. connection.Circuits.Values];
        }

        foreach (var circuit in circuits)
        {
            RemoveCircuit(circuit);
            var (peer, peerId) = circuit.Other(connection);
            if (circuit.Open)
            {
                peer.Link.Enqueue((byte)MessengerOpcode.StreamClose, 0, MessengerFrames.StreamClose(peerId, StreamCloseReason.PeerGone));
            }
        }
    }
}
