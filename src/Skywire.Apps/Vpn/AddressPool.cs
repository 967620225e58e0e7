using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Skywire.Apps.Vpn;

/// <summary>
/// The vpn-server's IPv4 addresses: the first host address of the subnet is the server's own (the gateway), the rest
/// are leased one per client key and kept for that key for the server's lifetime, so a client that reconnects gets
/// the same address. Thread-safe.
/// </summary>
public sealed class AddressPool
{
    private readonly Lock _sync = new();
    private readonly Dictionary<string, uint> _leases = new(StringComparer.OrdinalIgnoreCase);
    private readonly HashSet<uint> _taken = [];
    private readonly uint _first;
    private readonly uint _last;
    private uint _next;

    /// <param name="subnet">An IPv4 subnet with room for the gateway and at least one client (prefix 8 to 30).</param>
    /// <exception cref="ArgumentException">Not IPv4, or too small or large.</exception>
    public AddressPool(IPNetwork subnet)
    {
        if (subnet.BaseAddress.AddressFamily != AddressFamily.InterNetwork || subnet.PrefixLength is < 8 or > 30)
        {
            throw new ArgumentException($"VPN subnet {subnet} must be IPv4 with a prefix from /8 to /30", nameof(subnet));
        }

        Subnet = subnet;
        var network = ToUInt(subnet.BaseAddress);
        var broadcast = network | (uint.MaxValue >> subnet.PrefixLength);
        Gateway = FromUInt(network + 1);
        _first = network + 2;
        _last = broadcast - 1;
        _next = _first;
    }

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
                return FromUInt(held);
            }

            var size = _last - _first + 1;
            for (uint i = 0; i < size; i++)
            {
                var candidate = _first + ((_next - _first + i) % size);
                if (_taken.Add(candidate))
                {
                    _leases[client] = candidate;
                    _next = candidate + 1 > _last ? _first : candidate + 1;
                    return FromUInt(candidate);
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
}
