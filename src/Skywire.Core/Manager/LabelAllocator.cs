using System.Security.Cryptography;
using Skywire.Protocol;

namespace Skywire.Core.Manager;

/// <summary>
/// Hands out route labels: non-zero u32s unique per (receiving node, incoming link) among live routes
/// (docs/protocol.md §4.5). The seam where labels of several managers would be reserved in one shared store.
/// </summary>
public interface ILabelAllocator
{
    /// <summary>A label no live route uses on <paramref name="inLink"/> into <paramref name="node"/>.</summary>
    uint Allocate(PubKey node, PubKey inLink);

    /// <summary>Returns a label (its route is gone or moved).</summary>
    void Release(PubKey node, PubKey inLink, uint label);
}

/// <summary>Random labels, checked unique in memory. Thread-safe.</summary>
public sealed class LabelAllocator : ILabelAllocator
{
    private readonly object _sync = new();
    private readonly HashSet<(PubKey Node, PubKey InLink, uint Label)> _used = [];

    /// <summary>Labels in use.</summary>
    public int Count
    {
        get
        {
            lock (_sync)
            {
                return _used.Count;
            }
        }
    }

    /// <inheritdoc />
    public uint Allocate(PubKey node, PubKey inLink)
    {
        lock (_sync)
        {
            while (true)
            {
                // Random, not sequential: a label says nothing about how many routes a node carries.
                var label = (uint)RandomNumberGenerator.GetInt32(1, int.MaxValue);
                if (_used.Add((node, inLink, label)))
                {
                    return label;
                }
            }
        }
    }

    /// <summary>Marks a label in use that was handed out elsewhere (a route taken over from the store); false when it already was.</summary>
    public bool Reserve(PubKey node, PubKey inLink, uint label)
    {
        lock (_sync)
        {
            return _used.Add((node, inLink, label));
        }
    }

    /// <inheritdoc />
    public void Release(PubKey node, PubKey inLink, uint label)
    {
        lock (_sync)
        {
            _used.Remove((node, inLink, label));
        }
    }
}
