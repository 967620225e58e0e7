using Microsoft.Extensions.Logging;
using Skywire.Apps.Vpn.Packets;
using Skywire.Apps.Vpn.Tun;
using Skywire.Core.AppApi;
using Skywire.Core.Sdk;
using Skywire.Core.Sessions;
using Skywire.Core.Streams;
using Skywire.Protocol.AppApi;

namespace Skywire.Apps.Vpn;

/// <summary>
/// One tunnel between a vpn-client and a vpn-server: the stream's datagram flow. Outgoing packets are gathered by the
/// TUN reader thread into one record batch and sent in one write (<see cref="Flush"/>); incoming batches are read by a
/// dedicated thread, checked (a whole IP packet, the peer's own address) and written to the TUN, in-order TCP segments
/// of one flow in one batch coalesced into one write (<see cref="TunWriter"/>).
/// </summary>
/// <remarks>
/// Inside the node's process (<see cref="InProcessDatagrams"/>, docs/vpn.md "In the node's process") there is no app
/// API connection and no receiving thread: the TUN reader's batch goes into the session from its own thread
/// (<see cref="DatagramFlow.SendBatch"/>: seal, UDP send), and received packets are checked and written to the TUN on
/// the node's receive thread, coalesced per receive burst (<see cref="ReceiveBurst"/>).
/// </remarks>
internal sealed class VpnPeer : IDisposable, IReceiveBurstListener
{
    private readonly SkywireDatagrams? _datagrams;
    private readonly DatagramRecordWriter? _writer;
    private readonly InProcessDatagrams? _direct;
    private readonly DatagramBatch? _batch;
    private readonly Lock _tunGate = new(); // in-process: the node may deliver from more than one receive thread
    private bool _enlisted;
    private readonly ITunDevice _tun;
    private readonly TunWriter _tunWriter;
    private readonly VpnStatistics _statistics;
    private readonly UInt128 _address4;
    private readonly UInt128? _address6;
    private readonly bool _addressIsSource;
    private readonly ILogger _logger;
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Thread? _receiver;
    private int _mtu;
    private long _coalesced; // the writer's count already added to the statistics
    private int _disposed;

    // address4/6: the client's tunnel addresses (IpPacket.Key; no IPv6 when the server has no IPv6 pool). A server
    // accepts only packets from them (addressIsSource), a client only packets to them.
    public VpnPeer(string name, VpnDatagrams path, ITunDevice tun, UInt128 address4, UInt128? address6, bool addressIsSource, VpnStatistics statistics, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(path);
        Name = name;
        _tun = tun;
        _tunWriter = new TunWriter(tun);
        MaxPacket = path.MaxDatagram;
        _mtu = MaxPacket;
        _address4 = address4;
        _address6 = address6;
        _addressIsSource = addressIsSource;
        _statistics = statistics;
        _logger = logger;
        if (path.Direct is { } direct)
        {
            _direct = direct;
            _batch = new DatagramBatch(MaxPacket, 64);
        }
        else
        {
            _datagrams = path.Connection!;
            _writer = new DatagramRecordWriter(64 * 1024);
            _receiver = new Thread(Receive) { IsBackground = true, Name = "vpn-rx " + name };
        }
    }

    /// <summary>Who the peer is (for logs).</summary>
    public string Name { get; }

    /// <summary>True when the packets go straight into the node's session (the app runs inside the node's process).</summary>
    public bool InProcess => _direct is not null;

    /// <summary>Largest packet the flow carries.</summary>
    public int MaxPacket { get; }

    /// <summary>
    /// Largest packet the path to the peer carries (at most <see cref="MaxPacket"/>; lowered by the peer's own MTU and
    /// when a narrower link shows up): the TUN reader answers larger ones with ICMP "too big".
    /// </summary>
    public int Mtu
    {
        get => Volatile.Read(ref _mtu);
        set => Volatile.Write(ref _mtu, Math.Min(Math.Max(value, VpnDefaults.MinMtu), MaxPacket));
    }

    /// <summary>The path MTU the other side announced (hello or update); <see cref="int.MaxValue"/> when it gave none.</summary>
    public int RemoteMtu { get; set; } = int.MaxValue;

    /// <summary>The tunnel's control stream (the server sends its updates on it).</summary>
    public DuplexStream? Control { get; init; }

    /// <summary>Completes when the flow ended or failed.</summary>
    public Task Closed => _closed.Task;

    /// <summary>Set by the TUN reader while this peer has records waiting for <see cref="Flush"/>.</summary>
    internal bool Dirty { get; set; }

    /// <summary>Starts receiving: the receiving thread, or in the node's process the flow's receiver.</summary>
    public void Start()
    {
        if (_direct is { } direct)
        {
            VpnLog.PacketPathInProcess(_logger, Name);
            direct.Flow.Receiver = OnDatagram;
            _ = direct.Flow.Completion.ContinueWith(_ => _closed.TrySetResult(), TaskScheduler.Default);
            return;
        }

        _receiver!.Start();
    }

    /// <summary>Adds a packet to the outgoing batch (TUN reader thread only); false when the batch is full.</summary>
    public bool TryAdd(ReadOnlySpan<byte> packet) => _batch?.TryAdd(packet) ?? _writer!.TryAdd(packet);

    /// <summary>Sends the outgoing batch in one write (TUN reader thread only).</summary>
    public void Flush()
    {
        if (_batch is not null)
        {
            // In the node's process: sealed and sent on this thread (one UDP GSO send for the run).
            var sent = _batch.Count;
            if (sent > 0)
            {
                _direct!.Flow.SendBatch(_batch);
                Interlocked.Add(ref _statistics._fromTun, sent);
            }

            return;
        }

        if (_writer!.Length == 0)
        {
            return;
        }

        var count = _writer.Count;
        try
        {
            if (!_closed.Task.IsCompleted)
            {
                _datagrams!.SendRecords(_writer.Written);
                Interlocked.Add(ref _statistics._fromTun, count);
            }
        }
        catch (IOException ex)
        {
            Interlocked.Increment(ref _statistics._peerErrors);
            VpnLog.PeerFailed(_logger, Name, ex.Message);
            _closed.TrySetResult();
        }
        finally
        {
            _writer.Clear();
        }
    }

    private void Receive()
    {
        var reader = new DatagramRecordReader();
        try
        {
            while (_datagrams!.Receive(reader))
            {
                while (reader.TryRead(out var packet))
                {
                    Deliver(packet);
                }

                // One batch read: in-order TCP segments of a flow went into one super-packet, written now.
                FlushTun();
            }
        }
        catch (IOException ex)
        {
            if (Volatile.Read(ref _disposed) == 0)
            {
                VpnLog.PeerFailed(_logger, Name, ex.Message);
            }
        }
        finally
        {
            _closed.TrySetResult();
        }
    }

    // In the node's process, on its receive thread: check and hold (coalescing), written at the burst's end.
    private void OnDatagram(ReadOnlySpan<byte> packet)
    {
        lock (_tunGate)
        {
            if (Volatile.Read(ref _disposed) != 0)
            {
                return;
            }

            Deliver(packet);
            if (!_enlisted)
            {
                if (ReceiveBurst.Enlist(this))
                {
                    _enlisted = true;
                }
                else
                {
                    FlushTun();
                }
            }
        }
    }

    /// <inheritdoc />
    public void OnReceiveBurstEnd()
    {
        lock (_tunGate)
        {
            _enlisted = false;
            if (Volatile.Read(ref _disposed) == 0)
            {
                FlushTun();
            }
        }
    }

    /// <summary>Checks one packet from the peer and hands it to the TUN.</summary>
    internal void Deliver(ReadOnlySpan<byte> packet)
    {
        if (IpPacket.Validate(packet) == 0)
        {
            Interlocked.Increment(ref _statistics._malformed);
            return;
        }

        if (!Owns(packet, _addressIsSource))
        {
            Interlocked.Increment(ref _statistics._refused);
            return;
        }

        try
        {
            _tunWriter.Write(packet);
            Interlocked.Increment(ref _statistics._toTun);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            Interlocked.Increment(ref _statistics._tunErrors);
        }
    }

    /// <summary>Writes the packets <see cref="Deliver"/> holds for coalescing.</summary>
    internal void FlushTun()
    {
        try
        {
            _tunWriter.Flush();
            var coalesced = _tunWriter.Coalesced;
            if (coalesced != _coalesced)
            {
                Interlocked.Add(ref _statistics._coalesced, coalesced - _coalesced);
                _coalesced = coalesced;
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            Interlocked.Increment(ref _statistics._tunErrors);
        }
    }

    /// <summary>
    /// Whether <paramref name="packet"/> (valid) is the client's: its source (<paramref name="bySource"/>) or destination
    /// is the client's tunnel address of the packet's family.
    /// </summary>
    public bool Owns(ReadOnlySpan<byte> packet, bool bySource)
    {
        var key = IpPacket.Key(bySource ? IpPacket.Source(packet) : IpPacket.Destination(packet));
        return IpPacket.Version(packet) == 4 ? key == _address4 : key == _address6;
    }

    /// <summary>Closes the flow; the receiving thread ends.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _closed.TrySetResult();
        if (_direct is not null)
        {
            _direct.Dispose();

            // A packet being handed over on the node's receive thread finishes before the TUN may be closed.
            lock (_tunGate)
            {
                _enlisted = false;
            }
        }

        _datagrams?.Dispose();
        if (_receiver is { IsAlive: true } && _receiver != Thread.CurrentThread)
        {
            _receiver.Join(TimeSpan.FromSeconds(5));
        }
    }
}
