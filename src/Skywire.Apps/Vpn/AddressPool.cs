using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Skywire.Apps.Vpn;

/// <summary>
/// The vpn-server's addresses of one family (IPv4 or IPv6): the first host address of the subnet is the server's own
/// (the gateway), the rest are leased one per client key and kept for that key for the server's lifetime, so a client
/// that reconnects gets the same address. IPv4 never leases the broadcast address; IPv6 never the subnet-router
/// anycast address (the subnet's own). Thread-safe.
/// </summary>
public sealed class AddressPool
{
    private readonly Lock _sync = new();
    private readonly Dictionary<string, UInt128> _leases = new(StringComparer.OrdinalIgnoreCase);
    private readonly HashSet<UInt128> _taken = [];
    private readonly UInt128 _first;
    private readonly UInt128 _last;
    private readonly AddressFamily _family;
    private UInt128 _next;

    /// <param name="subnet">
    /// A subnet with room for the gateway and at least one client: IPv4 with a prefix from 8 to 30, or IPv6 with a prefix
    /// from 48 to 126.
    /// </param>
    /// <exception cref="ArgumentException">Neither, or too small or large.</exception>
    public AddressPool(IPNetwork subnet)
    {
        _family = subnet.BaseAddress.AddressFamily;
        if (!IsUsable(subnet))
        {
            throw new ArgumentException($"VPN subnet {subnet} must be IPv4 with a prefix from /8 to /30, or IPv6 from /48 to /126", nameof(subnet));
        }

        Subnet = subnet;
        var bits = _family == AddressFamily.InterNetwork ? 32 : 128;
        var network = ToKey(subnet.BaseAddress);
        var hosts = (UInt128.One << (bits - subnet.PrefixLength)) - 1;
        Gateway = FromKey(network + 1, _family);
        _first = network + 2;
        _last = _family == AddressFamily.InterNetwork ? (network | hosts) - 1 : network | hosts;
        _next = _first;
    }

    /// <summary>Whether <paramref name="subnet"/> can be a pool (see the constructor).</summary>
    public static bool IsUsable(IPNetwork subnet) => subnet.BaseAddress.AddressFamily switch
    {
        AddressFamily.InterNetwork => subnet.PrefixLength is >= 8 and <= 30,
        AddressFamily.InterNetworkV6 => subnet.PrefixLength is >= 48 and <= 126,
        _ => false,
    };

    /// <summary>The subnet.</summary>
    public IPNetwork Subnet { get; }

    /// <summary>The server's own address.</summary>
    public IPAddress Gateway { get; }

    /// <summary>The address leased to <paramref name="client"/> (the same one every time), or null when the pool is full.</summary>
    public IPAddress? Lease(string client)
    {
        ArgumentNullException.ThrowIfNull(client);
        lock (_sync)
        {
            if (_leases.TryGetValue(client, out var held))
            {
                return FromKey(held, _family);
            }

            // At most one more candidate than there are leases is taken: the search always ends quickly, also in a /64.
            var size = _last - _first + 1;
            var tries = UInt128.Min(size, (UInt128)_taken.Count + 1);
            for (UInt128 i = 0; i < tries; i++)
            {
                var candidate = _first + ((_next - _first + i) % size);
                if (_taken.Add(candidate))
                {
                    _leases[client] = candidate;
                    _next = candidate == _last ? _first : candidate + 1;
                    return FromKey(candidate, _family);
                }
            }

            return null;
        }
    }

    /// <summary>Leases held.</summary>
    public int Count
    {
        get
        {
            lock (_sync)
            {
                return _leases.Count;
            }
        }
    }

    /// <summary>An IPv4 address as a host-order number.</summary>
    public static uint ToUInt(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        Span<byte> bytes = stackalloc byte[4];
        return address.TryWriteBytes(bytes, out var written) && written == 4
            ? BinaryPrimitives.ReadUInt32BigEndian(bytes)
            : throw new ArgumentException($"{address} is not IPv4", nameof(address));
    }

    /// <summary>A host-order number as an IPv4 address.</summary>
    public static IPAddress FromUInt(uint value)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        return new IPAddress(bytes);
    }

    /// <summary>An address as a host-order number (IPv4 in the low 32 bits).</summary>
    private static UInt128 ToKey(IPAddress address) =>
        address.AddressFamily == AddressFamily.InterNetwork ? ToUInt(address) : BinaryPrimitives.ReadUInt128BigEndian(address.GetAddressBytes());

    private static IPAddress FromKey(UInt128 key, AddressFamily family)
    {
        if (family == AddressFamily.InterNetwork)
        {
            return FromUInt((uint)key);
        }

        Span<byte> bytes = stackalloc byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(bytes, key);
        return new IPAddress(bytes);
    }
}
