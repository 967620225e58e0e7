namespace Skywire.Core.Sessions;

/// <summary>
/// Tells datagram receivers on a node's receive thread when a burst has been handed over (one UDP receive, a GRO batch
/// of up to 64 datagrams), so a receiver may hold what it got and write it out once per burst: the VPN coalesces TCP
/// segments into one TUN write this way without a thread of its own (docs/vpn.md "In the node's process").
/// </summary>
/// <remarks>
/// The receive loop calls <see cref="BeginLoop"/> once on its thread and <see cref="End"/> after each receive. A
/// receiver calls <see cref="Enlist"/> from its <see cref="DatagramFlow.Receiver"/>: true means its
/// <see cref="IReceiveBurstListener.OnReceiveBurstEnd"/> runs on this thread when the burst ends; false (a thread without
/// bursts) means it must not hold anything. Nothing is allocated per datagram or burst after the first.
/// </remarks>
public static class ReceiveBurst
{
    [ThreadStatic]
    private static List<IReceiveBurstListener>? t_pending;

    /// <summary>Marks the calling thread as a receive loop that calls <see cref="End"/> after every receive.</summary>
    public static void BeginLoop() => t_pending ??= new List<IReceiveBurstListener>(8);

    /// <summary>
    /// Asks for <paramref name="listener"/>'s <see cref="IReceiveBurstListener.OnReceiveBurstEnd"/> at the end of the
    /// current burst (the caller enlists once per burst). False when the calling thread is not a receive loop.
    /// </summary>
    public static bool Enlist(IReceiveBurstListener listener)
    {
        var pending = t_pending;
        if (pending is null)
        {
            return false;
        }

        pending.Add(listener);
        return true;
    }

    /// <summary>Ends the burst: every enlisted listener is called once, in order (the receive loop only).</summary>
    public static void End()
    {
        var pending = t_pending;
        if (pending is null || pending.Count == 0)
        {
            return;
        }

        for (var i = 0; i < pending.Count; i++)
        {
            pending[i].OnReceiveBurstEnd();
        }

        pending.Clear();
    }
}

/// <summary>Something that holds received datagrams until the receive burst ends (<see cref="ReceiveBurst"/>).</summary>
public interface IReceiveBurstListener
{
    /// <summary>The burst it enlisted in ended (on the receive thread): write out what is held. Must not throw.</summary>
    void OnReceiveBurstEnd();
}
