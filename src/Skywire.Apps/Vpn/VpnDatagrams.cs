using Skywire.Core.AppApi;
using Skywire.Core.Sdk;

namespace Skywire.Apps.Vpn;

/// <summary>
/// A tunnel's datagram path: the app API's datagram connection (<see cref="SkywireDatagrams"/>, the app in its own
/// process), or, when the app runs inside its node's process (<see cref="VpnAppBinding.InProcess"/>), the stream's
/// flow itself (<see cref="InProcessDatagrams"/>: no connection, no hand-off to other threads).
/// </summary>
internal sealed class VpnDatagrams : IDisposable
{
    private VpnDatagrams(SkywireDatagrams? connection, InProcessDatagrams? direct)
    {
        Connection = connection;
        Direct = direct;
        MaxDatagram = direct?.Flow.MaxDatagramSize ?? connection!.MaxDatagram;
    }

    public SkywireDatagrams? Connection { get; }

    public InProcessDatagrams? Direct { get; }

    /// <summary>Largest datagram (tunnel packet) the path carries.</summary>
    public int MaxDatagram { get; }

    /// <summary>Opens the path of <paramref name="stream"/>: in the node's process when the binding can, else over the app API.</summary>
    public static async Task<VpnDatagrams> OpenAsync(SkywireApp app, SkywireStream stream, VpnAppBinding binding, CancellationToken cancellationToken)
    {
        if (binding.InProcess is { } attach && stream.DatagramHandle is { } handle && attach(handle) is { } direct)
        {
            return new VpnDatagrams(null, direct);
        }

        return new VpnDatagrams(await app.OpenDatagramsAsync(stream, cancellationToken), null);
    }

    /// <summary>Closes the path (used only when no peer took it over).</summary>
    public void Dispose()
    {
        Direct?.Dispose();
        Connection?.Dispose();
    }
}
