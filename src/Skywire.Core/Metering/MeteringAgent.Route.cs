using Skywire.Core.Channels;
using Skywire.Core.Forwarding;
using Skywire.Protocol;
using Skywire.Protocol.Control;
using Skywire.Protocol.Metering;

namespace Skywire.Core.Metering;

internal sealed partial class MeteringAgent
{
    /// <summary>
    /// One metered route at this node's position p (0 source, 1..k−1 relays, k = hop count: destination). It receives
    /// forward traffic on hop p−1 and reverse traffic on hop p, and sends forward on hop p and reverse on hop p−1. A
    /// relay's counters for a direction are its forwarding rule's (it forwards what it receives); an end sends through
    /// a send meter and receives through its session's delivery rule, bound when it appears.
    /// </summary>
    private sealed class MeteredRoute
    {
        private readonly MeteringAgent _agent;
        private readonly int _k;
        private readonly RuleSlot? _forwardIn;
        private readonly RuleSlot? _reverseIn;
        private readonly (PubKey Link, uint Label, SendMeter Meter, SendSlot Counter)? _sendForward;
        private readonly (PubKey Link, uint Label, SendMeter Meter, SendSlot Counter)? _sendReverse;
        private readonly List<(HopReceiver Receiver, HopReceipt? PendingFinal)> _receivers = [];
        private readonly List<HopSender> _senders = [];
        private readonly Lock _sync = new();
        private readonly long _attachedAt;
        private ulong _capForward;
        private ulong _capReverse;
        private ulong _authSeq;
        private ulong _signedSeq;
        private ulong _deliveredForward;
        private long _closedAt = -1;
        private bool _superseded;
        private bool _stopped;

        public MeteredRoute(RouteTerms terms, int position, MeterMessage labels, MeteringAgent agent)
        {
            (_agent, Terms, Position, _k) = (agent, terms, position, terms.HopCount);
            TermsId = terms.TermsId;
            Id = Convert.ToHexStringLower(TermsId);
            RouteId = Convert.ToHexStringLower(terms.RouteId);
            _attachedAt = agent._time.GetTimestamp();
            var options = agent._options.Receipts;
            if (position >= 1)
            {
                _forwardIn = new RuleSlot(terms.NodeAt(position - 1), labels.ForwardIn ?? 0);
                _receivers.Add((new HopReceiver(terms, position - 1, MeteringDirection.Forward, agent._key, options, agent._time, _forwardIn), null));
            }

            if (position < _k)
            {
                _reverseIn = new RuleSlot(terms.NodeAt(position + 1), labels.ReverseIn ?? 0);
                _receivers.Add((new HopReceiver(terms, position, MeteringDirection.Reverse, agent._key, options, agent._time, _reverseIn), null));
            }

            if (position == 0)
            {
                var link = terms.NodeAt(1);
                var meter = agent._rules.AddSendMeter(link, labels.ForwardOut ?? 0);
                _sendForward = (link, labels.ForwardOut ?? 0, meter, new SendSlot(meter));
            }

            if (position == _k)
            {
                var link = terms.NodeAt(_k - 1);
                var meter = agent._rules.AddSendMeter(link, labels.ReverseOut ?? 0);
                _sendReverse = (link, labels.ReverseOut ?? 0, meter, new SendSlot(meter));
            }

            if (position < _k)
            {
                IHopCounter sent = _sendForward is { } f ? f.Counter : _forwardIn!;
                _senders.Add(new HopSender(terms, position, MeteringDirection.Forward, agent._key, options, sent));
            }

            if (position >= 1)
            {
                IHopCounter sent = _sendReverse is { } r ? r.Counter : _reverseIn!;
                _senders.Add(new HopSender(terms, position - 1, MeteringDirection.Reverse, agent._key, options, sent));
            }

            // A relay's rules are installed before the route is metered: bound now, so the caps hold from the first packet.
            // Counters that already moved (a route adopted on the same labels after its manager changed) count from here.
            _forwardIn?.TryBind(agent._rules, fromNow: true);
            _reverseIn?.TryBind(agent._rules, fromNow: true);
        }

        public RouteTerms Terms { get; }

        public byte[] TermsId { get; }

        public string Id { get; }

        public string RouteId { get; }

        public int Position { get; }

        /// <summary>Closed, every final receipt answered, and the linger over: the agent forgets the route.</summary>
        public bool Done { get; private set; }

        private bool IsRelay => Position > 0 && Position < _k;

        /// <summary>True when this route counts on one of <paramref name="other"/>'s rules or send meters (same labels).</summary>
        public bool SharesCountersWith(MeteredRoute other) =>
            Same(_forwardIn, other._forwardIn) || Same(_reverseIn, other._reverseIn)
            || (_sendForward is { } f && other._sendForward is { } g && ReferenceEquals(f.Meter, g.Meter))
            || (_sendReverse is { } r && other._sendReverse is { } q && ReferenceEquals(r.Meter, q.Meter));

        private static bool Same(RuleSlot? a, RuleSlot? b) => a is not null && b is not null && a.Link == b.Link && a.Label == b.Label;

        /// <summary>
        /// New terms took over this route's counters (its manager changed): it no longer sets caps or removes the shared
        /// send meters, proposes its final receipts once, and is forgotten after the linger whether or not they were taken.
        /// </summary>
        public void Supersede()
        {
            lock (_sync)
            {
                _superseded = true;
                _forwardIn?.Freeze();
                _reverseIn?.Freeze();
                _sendForward?.Counter.Freeze();
                _sendReverse?.Counter.Freeze();
                if (_closedAt < 0)
                {
                    _closedAt = _agent._time.GetTimestamp();
                }
            }
        }

        /// <summary>
        /// This node is stopping cleanly: nothing more passes here on the route (every cap set to what its counter holds
        /// now, so a relay's final outbound figure can never exceed its final inbound one), and it closes at the next tick.
        /// </summary>
        public void Stop()
        {
            lock (_sync)
            {
                if (_superseded || _stopped)
                {
                    return;
                }

                _stopped = true;
                foreach (var entry in new[] { _forwardIn?.Entry, _reverseIn?.Entry })
                {
                    if (entry is not null && IsRelay)
                    {
                        Volatile.Write(ref entry.Cap, Interlocked.Read(ref entry.Bytes));
                    }
                }

                foreach (var meter in new[] { _sendForward?.Meter, _sendReverse?.Meter })
                {
                    if (meter is not null)
                    {
                        Volatile.Write(ref meter.Cap, Interlocked.Read(ref meter.Bytes));
                    }
                }
            }
        }

        /// <summary>
        /// Closed, this node's final receipts taken by the manager, and the hops it sends on countersigned up to their
        /// final receipts (where anything was sent): what a clean stop waits for.
        /// </summary>
        public bool Drained
        {
            get
            {
                lock (_sync)
                {
                    return _superseded || (_closedAt >= 0
                        && _receivers.All(r => r.PendingFinal is null && (r.Receiver.Closed || r.Receiver.Latest is null))
                        && _senders.All(s => s.Latest is { Final: true } || s.SentBytes == 0));
                }
            }
        }

        /// <summary>Sets the caps the data path gates on: relays on their rules, the source and destination on their sends.</summary>
        public void SetCaps(ulong forward, ulong reverse)
        {
            lock (_sync)
            {
                _capForward = Math.Max(_capForward, forward);
                _capReverse = Math.Max(_capReverse, reverse);
                ApplyCaps();
            }
        }

        /// <summary>Takes an authorization with a higher seq; false for an old one.</summary>
        public bool TakeAuthorization(SpendAuthorization auth)
        {
            lock (_sync)
            {
                if (auth.Seq <= _authSeq)
                {
                    return false;
                }

                _authSeq = auth.Seq;
            }

            SetCaps(auth.CapForward, auth.CapReverse);
            Log.CapsRaised(_agent._logger, RouteId, auth.CapForward, auth.CapReverse);
            return true;
        }

        public HopReceipt? Countersign(HopReceipt proposal, out string? reason)
        {
            lock (_sync)
            {
                var sender = _senders.FirstOrDefault(s => s.Hop == proposal.Hop && s.Direction == proposal.Direction);
                if (sender is null)
                {
                    reason = "this node is not the sender of that hop";
                    return null;
                }

                return sender.Countersign(proposal, out reason);
            }
        }

        public async Task TickAsync(CancellationToken cancellationToken)
        {
            var nowMs = _agent._time.GetUtcNow().ToUnixTimeMilliseconds();
            lock (_sync)
            {
                Bind();
                foreach (var sender in _senders)
                {
                    sender.Sample(nowMs);
                }

                if (_closedAt < 0 && (Gone() || nowMs >= Terms.ExpiresMs || _stopped))
                {
                    _closedAt = _agent._time.GetTimestamp();
                }
            }

            var closing = _closedAt >= 0;
            if (Position == 0 && !closing && _agent._options.Authorize)
            {
                await AuthorizeAsync(cancellationToken); // first: a late cap stalls the route, a late receipt does not
            }

            for (var i = 0; i < _receivers.Count; i++)
            {
                var (receiver, pending) = _receivers[i];
                var proposal = pending ?? receiver.Propose(closing);
                if (proposal is null || (proposal.Bytes == 0 && receiver.Latest is null))
                {
                    continue; // nothing due, or nothing ever arrived on this hop: no receipt to make
                }

                _receivers[i] = (receiver, proposal.Final ? proposal : null);
                var answer = await _agent.CallAsync(ControlOpcode.MeterReceipt, new MeterMessage { Data = Convert.ToHexStringLower(Encode(proposal)) }, cancellationToken);
                var signed = Decode<HopReceipt>(answer.Data, HopReceipt.TryDecode);
                if (!signed.ReceiverSignature.AsSpan().SequenceEqual(proposal.ReceiverSignature) || !receiver.Accept(signed))
                {
                    throw new ControlException(ControlErrorCode.BadRequest, "the manager answered with another receipt");
                }

                _receivers[i] = (receiver, null);
                _agent._journal.Append(signed.Encode(), flush: signed.Final);
            }

            Done = closing && (_superseded || _receivers.All(r => r.PendingFinal is null && (r.Receiver.Closed || r.Receiver.Latest is null)))
                && _agent._time.GetElapsedTime(_closedAt) >= _agent._options.Linger;
        }

        /// <summary>The receiver's proposal in the receipt layout with the sender's signature still zero (the manager has the sender fill it).</summary>
        private static byte[] Encode(HopReceipt proposal) =>
            [.. proposal.EncodeBody(), .. proposal.ReceiverSignature, .. new byte[MeteringWire.SignatureLength]];

        /// <summary>
        /// The source keeps the caps a window ahead of what was delivered: forward, of what the last hop's receiver
        /// co-signed (the manager tells); reverse, of what its own session received.
        /// </summary>
        private async Task AuthorizeAsync(CancellationToken cancellationToken)
        {
            var window = Terms.WindowBytes;
            var sent = _sendForward is { } f ? ((IHopCounter)f.Counter).Bytes : 0;
            var received = _reverseIn is { } r ? r.Bytes : 0;
            ulong capForward, capReverse, delivered;
            lock (_sync)
            {
                (capForward, capReverse, delivered) = (_capForward, _capReverse, _deliveredForward);
            }

            // Raised ahead of need: as soon as the delivered figures (pushed by the manager as the destination's receipts
            // post, or asked for here) allow a step of a quarter window, and on every tick once a quarter of the window
            // is used; so an honest, funded stream does not reach its cap while the next figure is on its way.
            var newForward = Math.Max(capForward, delivered + window);
            var newReverse = Math.Max(capReverse, received + window);
            var step = newForward >= capForward + window / 4 || newReverse >= capReverse + window / 4;
            if (!step && sent + window * 3 / 4 < capForward && received + window * 3 / 4 < capReverse)
            {
                return;
            }

            MeterMessage answer;
            if (newForward > capForward || newReverse > capReverse)
            {
                // A seq is never signed twice (an unanswered authorization may have reached the ledger: another one with
                // the same seq would be equivocation).
                ulong seq;
                lock (_sync)
                {
                    seq = _signedSeq = Math.Max(_signedSeq, _authSeq) + 1;
                }

                var auth = MeteringSigner.SignAuthorization(
                    new SpendAuthorization { TermsId = TermsId, Seq = seq, CapForward = newForward, CapReverse = newReverse }, _agent._key);
                answer = await _agent.CallAsync(ControlOpcode.MeterAuth, new MeterMessage { Data = Convert.ToHexStringLower(auth.Encode()) }, cancellationToken);
                if (TakeAuthorization(auth))
                {
                    _agent._journal.Append(auth.Encode());
                }
            }
            else
            {
                answer = await _agent.CallAsync(ControlOpcode.MeterAuth, new MeterMessage { TermsId = Id }, cancellationToken);
            }

            lock (_sync)
            {
                _deliveredForward = Math.Max(_deliveredForward, answer.DeliveredForward ?? 0);
            }
        }

        /// <summary>As the source: forward bytes the destination co-signed, pushed by the manager.</summary>
        public void Delivered(ulong bytes)
        {
            lock (_sync)
            {
                _deliveredForward = Math.Max(_deliveredForward, bytes);
            }
        }

        /// <summary>
        /// Removes the send meters (the route is forgotten). Returns how often this end's sends met the cap: packets held
        /// there (they waited for an authorization) and packets dropped there (the hold was full); 0 at a relay.
        /// </summary>
        public (long Held, long Capped) Detach()
        {
            var meters = new[] { _sendForward?.Meter, _sendReverse?.Meter }.Where(m => m is not null).Select(m => m!).ToList();
            var counts = (meters.Sum(m => Interlocked.Read(ref m.Held)), meters.Sum(m => Interlocked.Read(ref m.Capped)));
            if (_superseded)
            {
                return counts; // the send meters are the new terms' now
            }

            if (_sendForward is { } f)
            {
                _agent._rules.RemoveSendMeter(f.Link, f.Label, f.Meter);
            }

            if (_sendReverse is { } r)
            {
                _agent._rules.RemoveSendMeter(r.Link, r.Label, r.Meter);
            }

            return counts;
        }

        private void Bind()
        {
            var changed = _forwardIn?.TryBind(_agent._rules) == true;
            changed |= _reverseIn?.TryBind(_agent._rules) == true;
            if (changed)
            {
                ApplyCaps();
            }
        }

        /// <summary>A rule this route was bound to is gone (removed, replaced, expired), or none appeared in time.</summary>
        private bool Gone()
        {
            var slots = new[] { _forwardIn, _reverseIn }.Where(s => s is not null).Select(s => s!).ToList();
            if (slots.Any(s => s.Entry is not null && !ReferenceEquals(_agent._rules.Peek(s.Link, s.Label), s.Entry)))
            {
                return true;
            }

            return slots.All(s => s.Entry is null) && _agent._time.GetElapsedTime(_attachedAt) >= _agent._options.Linger;
        }

        private void ApplyCaps()
        {
            if (_superseded || _stopped)
            {
                return;
            }

            // Caps are on the cumulative counters: what they held before this route's terms is added (normally 0).
            if (IsRelay)
            {
                if (_forwardIn is { Entry: { } forward } fs)
                {
                    Volatile.Write(ref forward.Cap, fs.BaseBytes + (long)_capForward);
                }

                if (_reverseIn is { Entry: { } reverse } rs)
                {
                    Volatile.Write(ref reverse.Cap, rs.BaseBytes + (long)_capReverse);
                }
            }

            // The packets held at the old cap leave now, in order (back-pressure, not loss: docs/metering.md "Caps").
            if (_sendForward is { } f)
            {
                Volatile.Write(ref f.Meter.Cap, f.Counter.BaseBytes + (long)_capForward);
                f.Meter.Release();
            }

            if (_sendReverse is { } r)
            {
                Volatile.Write(ref r.Meter.Cap, r.Counter.BaseBytes + (long)_capReverse);
                r.Meter.Release();
            }
        }
    }

    /// <summary>
    /// A forwarding rule's counters, bound when the rule appears (an end's delivery rule comes with its session). Bound
    /// at attach, it counts from there (<see cref="BaseBytes"/>: normally 0; more when the route was adopted on the same
    /// labels with new terms); bound later, from the rule's start.
    /// </summary>
    private sealed class RuleSlot(PubKey link, uint label) : IHopCounter
    {
        private long _baseFrames;
        private (ulong Bytes, ulong Frames)? _frozen;

        public PubKey Link { get; } = link;

        public uint Label { get; } = label;

        public RuleEntry? Entry { get; private set; }

        public long BaseBytes { get; private set; }

        public ulong Bytes => _frozen?.Bytes ?? (Entry is { } e ? (ulong)Math.Max(0, Interlocked.Read(ref e.Bytes) - BaseBytes) : 0);

        public ulong Frames => _frozen?.Frames ?? (Entry is { } e ? (ulong)Math.Max(0, Interlocked.Read(ref e.Packets) - _baseFrames) : 0);

        /// <summary>The counts stop here (newer terms count the rule from now on).</summary>
        public void Freeze() => _frozen ??= (Bytes, Frames);

        public bool TryBind(RuleTable rules, bool fromNow = false)
        {
            if (Entry is not null || rules.Peek(Link, Label) is not { } entry)
            {
                return false;
            }

            if (fromNow)
            {
                (BaseBytes, _baseFrames) = (Interlocked.Read(ref entry.Bytes), Interlocked.Read(ref entry.Packets));
            }

            Entry = entry;
            return true;
        }
    }

    /// <summary>A send meter's counters from this route's attach on (it may be shared with the terms it superseded).</summary>
    private sealed class SendSlot : IHopCounter
    {
        private readonly SendMeter _meter;
        private readonly long _baseFrames;
        private (ulong Bytes, ulong Frames)? _frozen;

        public SendSlot(SendMeter meter)
        {
            _meter = meter;
            (BaseBytes, _baseFrames) = (Interlocked.Read(ref meter.Bytes), Interlocked.Read(ref meter.Packets));
        }

        public long BaseBytes { get; }

        public ulong Bytes => _frozen?.Bytes ?? (ulong)Math.Max(0, Interlocked.Read(ref _meter.Bytes) - BaseBytes);

        public ulong Frames => _frozen?.Frames ?? (ulong)Math.Max(0, Interlocked.Read(ref _meter.Packets) - _baseFrames);

        /// <summary>The counts stop here (newer terms count the meter from now on).</summary>
        public void Freeze() => _frozen ??= (Bytes, Frames);
    }
}
