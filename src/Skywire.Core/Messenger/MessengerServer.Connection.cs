using System.Text.Json;
using Skywire.Core.Messenger.Internal;
using Skywire.Protocol;
using Skywire.Protocol.Framing;
using Skywire.Protocol.Messenger;

namespace Skywire.Core.Messenger;

public sealed partial class MessengerServer
{
    /// <summary>One registered client: its link, rate limiter and circuits. Frames are handled inline on its read loop.</summary>
    private sealed class ServerConnection
    {
        private readonly MessengerServer _server;
        private uint _nextCircuit;

        public ServerConnection(MessengerServer server, PubKey key, MessengerLink link, TokenBucket bucket)
        {
            _server = server;
            Key = key;
            Link = link;
            Bucket = bucket;
        }

        public PubKey Key { get; }
        public MessengerLink Link { get; }
        public TokenBucket Bucket { get; }

        /// <summary>Circuits this connection is an end of, by this side's id (guarded by the server's circuit lock).</summary>
        public Dictionary<uint, Circuit> Circuits { get; } = [];

        public uint NextCircuitId()
        {
            do
            {
                _nextCircuit++;
            }
            while (_nextCircuit == 0 || Circuits.ContainsKey(_nextCircuit));

            return _nextCircuit;
        }

        /// <summary>Queues a Deliver frame; false when <paramref name="bounded"/> and the client is not reading.</summary>
        public bool Deliver(PubKey from, byte flags, ReadOnlySpan<byte> envelope, bool bounded)
        {
            Span<byte> prefix = stackalloc byte[PubKey.Length + 1];
            from.WriteTo(prefix);
            prefix[PubKey.Length] = flags;
            return bounded
                ? Link.TryEnqueueBounded((byte)MessengerOpcode.Deliver, 0, prefix, envelope, _server.Options.OutboundQueueLimit)
                : Link.Enqueue((byte)MessengerOpcode.Deliver, 0, prefix, envelope);
        }

        /// <summary>Pings the client; true if it answers within <paramref name="timeout"/>.</summary>
        public async Task<bool> IsAliveAsync(TimeSpan timeout)
        {
            try
            {
                await Link.RequestAsync((byte)MessengerOpcode.Ping, ReadOnlyMemory<byte>.Empty, timeout, CancellationToken.None);
                return true;
            }
            catch (MessengerException)
            {
                return false;
            }
        }

        public void Handle(byte opcode, uint requestId, ReadOnlySpan<byte> payload)
        {
            switch ((MessengerOpcode)opcode)
            {
                case MessengerOpcode.Send:
                    HandleSend(requestId, payload);
                    break;
                case MessengerOpcode.Ping:
                    Link.Enqueue((byte)(opcode | FrameCodec.ResponseBit), requestId, []);
                    break;
                case MessengerOpcode.StreamData:
                    _server.OnStreamData(this, payload);
                    break;
                case MessengerOpcode.StreamCredit:
                    _server.OnStreamCredit(this, payload);
                    break;
                case MessengerOpcode.StreamClose:
                    _server.OnStreamClose(this, payload);
                    break;
                case MessengerOpcode.PeerSend:
                    _server.OnPeerSend(this, requestId, payload);
                    break;
                case MessengerOpcode.PeerDropped:
                    _server.OnPeerDropped(this, payload);
                    break;
                case MessengerOpcode.StreamOpen:
                    if (Limited(requestId))
                    {
                        return;
                    }

                    _server.OnStreamOpen(this, requestId, payload);
                    break;
                case MessengerOpcode.Offer:
                case MessengerOpcode.Withdraw:
                case MessengerOpcode.Query:
                    if (Limited(requestId))
                    {
                        return;
                    }

                    HandleDirectory((MessengerOpcode)opcode, requestId, payload);
                    break;
                default:
                    throw new ProtocolViolationException($"unexpected opcode 0x{opcode:x2} from a client");
            }
        }

        private bool Limited(uint requestId)
        {
            if (Bucket.TryTake())
            {
                return false;
            }

            Log.RateLimited(_server._logger, Key);
            Link.RespondError(requestId, MessengerErrorCode.RateLimited, "rate limit exceeded; slow down");
            return true;
        }

        private void HandleSend(uint messageId, ReadOnlySpan<byte> payload)
        {
            MessengerFrames.ReadSend(payload, out var to, out var envelope);
            DropReason? reason;
            if (!Bucket.TryTake())
            {
                Log.RateLimited(_server._logger, Key);
                reason = DropReason.RateLimited;
            }
            else if (envelope.Length > MessengerProtocol.MaxEnvelopeSize)
            {
                reason = DropReason.TooLarge;
            }
            else
            {
                reason = _server.Route(Key, to, messageId, envelope);
            }

            if (reason is { } r)
            {
                _server.NotifyDrop(Key, new DropNotice { To = to.ToString(), MessageId = messageId, Reason = r, Detail = Describe(r) }, origin: this);
            }
        }

        public static string Describe(DropReason reason) => reason switch
        {
            DropReason.QueueFull => "the recipient is offline and its queue is full",
            DropReason.RateLimited => "the sender is over its rate limit",
            DropReason.RecipientBusy => "the recipient is not reading its messages",
            DropReason.TooLarge => $"the envelope is larger than {MessengerProtocol.MaxEnvelopeSize} bytes",
            DropReason.StoreFull => "the messenger's store is full",
            _ => reason.ToString(),
        };

        private void HandleDirectory(MessengerOpcode opcode, uint requestId, ReadOnlySpan<byte> payload)
        {
            try
            {
                switch (opcode)
                {
                    case MessengerOpcode.Offer:
                        var offer = JsonSerializer.Deserialize(payload, MessengerJsonContext.Default.OfferRequest) ?? throw new JsonException("null offer");
                        var offered = _server.Directory.Offer(Key, offer);
                        _server.Presence?.Offered(Key, offer.Services, DateTimeOffset.FromUnixTimeMilliseconds(offered.ExpiresAtMs));
                        Link.Respond((byte)opcode, requestId, offered, MessengerJsonContext.Default.OfferResult);
                        break;
                    case MessengerOpcode.Withdraw:
                        var withdraw = JsonSerializer.Deserialize(payload, MessengerJsonContext.Default.WithdrawRequest) ?? throw new JsonException("null withdraw");
                        var names = withdraw.Names.Count == 0 ? _server.Directory.NamesOf(Key) : withdraw.Names;
                        _server.Directory.Withdraw(Key, withdraw.Names);
                        _server.Presence?.Withdrawn(Key, names);
                        Link.Respond((byte)opcode, requestId, new OkResult(), MessengerJsonContext.Default.OkResult);
                        break;
                    default:
                        var query = JsonSerializer.Deserialize(payload, MessengerJsonContext.Default.ServiceQuery) ?? throw new JsonException("null query");
                        Link.Respond((byte)opcode, requestId, _server.Directory.Query(Key, query, _server.IsOnlineAnywhere), MessengerJsonContext.Default.ServiceQueryResult);
                        break;
                }
            }
            catch (MessengerException ex)
            {
                Link.RespondError(requestId, ex.Code, ex.Message);
            }
        }
    }
}
