using System.Buffers.Binary;
using Microsoft.Extensions.Logging;
using Skywire.Core.Links;
using Skywire.Protocol.Links;

namespace Skywire.Core.DataPlane;

/// <summary>
/// The timers of the links (docs/protocol.md §3.1, §3.3; wireguard-go's timers.go), driven by one maintenance
/// loop every <see cref="DataPlaneOptions.TickInterval"/>: handshake retries and timeouts, forgetting keys a
/// peer never confirmed, probes (RTT, loss, keepalive), death after <see cref="DataPlaneOptions.DeadAfter"/>
/// of silence, and rekeying after <see cref="DataPlaneOptions.RekeyAfter"/>. The same loop lets the sessions
/// run their timers and sweeps expired rules once a second (<see cref="OnTick"/>).
/// </summary>
internal sealed class LinkTimers
{
    private readonly LinkTable _table;
    private readonly LinkHandshaker _handshaker;
    private readonly LinkSender _sender;
    private readonly DataPlaneOptions _options;
    private readonly ILinkEvents _events;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public LinkTimers(LinkTable table, LinkHandshaker handshaker, LinkSender sender, DataPlaneOptions options, ILinkEvents events, TimeProvider time, ILogger logger)
    {
        _table = table;
        _handshaker = handshaker;
        _sender = sender;
        _options = options;
        _events = events;
        _time = time;
        _logger = logger;
    }

    /// <summary>The rest of a tick (sessions, rules): called after the links, with the same timestamp.</summary>
    public Action<long>? OnTick { get; init; }

    /// <summary>Ticks until <paramref name="cancellationToken"/> is cancelled. A failing tick is logged and the loop goes on.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(_options.TickInterval, _time);
        while (await timer.WaitForNextTickAsync(cancellationToken))
        {
            try
            {
                Tick(_time.GetTimestamp());
            }
            catch (Exception ex)
            {
                DataPlaneLog.MaintenanceFailed(_logger, ex);
            }
        }
    }

    /// <summary>One tick at <paramref name="now"/> (a TimeProvider timestamp).</summary>
    public void Tick(long now)
    {
        foreach (var link in _table.Links)
        {
            TickLink(link, now);
        }

        OnTick?.Invoke(now);
    }

    /// <summary>A probe reply arrived on <paramref name="link"/> (receive thread).</summary>
    public void OnProbeReply(Link link, uint id)
    {
        lock (link.Gate)
        {
            link.Probes.OnReply(id, _options.ProbeWindow, _time);
        }
    }

    private void TickLink(Link link, long now)
    {
        string? downReason = null;
        lock (link.Gate)
        {
            if (link.Removed)
            {
                return;
            }

            if (link.LostAt != 0 && link.State == LinkState.Down && !link.Wanted)
            {
                // A lost link the peer had opened: remembered (and reported) for a while, then forgotten.
                if (_time.GetElapsedTime(link.LostAt, now) > _options.RememberLostLinks)
                {
                    _table.ForgetLocked(link);
                }

                return;
            }

            if (link.Pending is not null)
            {
                if (_time.GetElapsedTime(link.HandshakeStartedAt, now) > _options.HandshakeTimeout)
                {
                    downReason = $"handshake timed out after {link.Attempts} attempts";
                    if (!_table.MarkDownLocked(link, LinkState.Down, downReason))
                    {
                        downReason = null;
                    }
                }
                else if (now >= link.NextAttemptAt)
                {
                    _handshaker.StartLocked(link);
                }
            }
            else if (link.State == LinkState.Connecting && _time.GetElapsedTime(link.HandshakeStartedAt, now) > _options.HandshakeTimeout)
            {
                // Responder side whose keys the initiator never confirmed (a stranger's link is freed with them).
                downReason = _table.MarkDownLocked(link, LinkState.Down, "handshake not confirmed") ? "handshake not confirmed" : null;
            }

            if (link.State == LinkState.Up && link.Current is { } session)
            {
                if (_time.GetElapsedTime(link.LastReceivedAt, now) > _options.DeadAfter)
                {
                    downReason = $"no packet for {_options.DeadAfter.TotalSeconds:0.#} s";
                    _table.MarkDownLocked(link, LinkState.Down, downReason);
                }
                else
                {
                    if (now >= link.Probes.NextAt)
                    {
                        SendProbeLocked(link, session, now);
                    }

                    if (link.Initiator && link.Pending is null && _time.GetElapsedTime(session.CreatedAt, now) > _options.RekeyAfter)
                    {
                        // Fresh ephemeral keys; the current ones keep working until the response arrives.
                        link.Attempts = 0;
                        link.HandshakeStartedAt = now;
                        _handshaker.StartLocked(link);
                    }
                }
            }
        }

        if (downReason is not null)
        {
            _events.LinkDown(link, downReason);
        }
    }

    private void SendProbeLocked(Link link, LinkSession session, long now)
    {
        var id = link.Probes.Record(now, _options.ProbeWindow);
        link.Probes.NextAt = now + (long)(_options.ProbeInterval.TotalSeconds * _time.TimestampFrequency);
        Span<byte> body = stackalloc byte[13];
        body[0] = (byte)LinkControlKind.Probe;
        BinaryPrimitives.WriteUInt32BigEndian(body[1..], id);
        BinaryPrimitives.WriteInt64BigEndian(body[5..], now);
        _sender.SendControl(link, session, body);
    }
}
