using System.Net;
using System.Text.Json;
using Skywire.Core.Channels;
using Skywire.Core.Control;
using Skywire.Core.Crypto;
using Skywire.Core.DataPlane;
using Skywire.IntegrationTests.Mesh;
using Skywire.Protocol;
using Skywire.Protocol.Control;

namespace Skywire.IntegrationTests.Manager;

/// <summary>
/// A node that speaks the control protocol correctly and lies (issue 12.5): built from the control client, with a
/// real data plane when it needs real links. It answers every manager command "ok" and forwards nothing.
/// </summary>
internal sealed class RogueNode : IAsyncDisposable
{
    private readonly KeyPair _key;
    private readonly CancellationTokenSource _stop = new();
    private Task? _reporting;

    private RogueNode(KeyPair key, FrameConnection control, NodeDataPlane? dataPlane)
    {
        _key = key;
        Control = control;
        DataPlane = dataPlane;
    }

    public PubKey Key => _key.Public;

    public FrameConnection Control { get; }

    public NodeDataPlane? DataPlane { get; }

    /// <summary>Registers with the harness's manager as a node (with a data plane of its own when asked).</summary>
    public static async Task<RogueNode> ConnectAsync(MeshHarness mesh, bool withDataPlane = false)
    {
        var key = KeyPair.Generate();
        NodeDataPlane? dataPlane = null;
        var linkAddress = "127.0.0.1:9";
        if (withDataPlane)
        {
            dataPlane = new NodeDataPlane(key, loggerFactory: mesh.Log);
            linkAddress = dataPlane.Start(new IPEndPoint(IPAddress.Loopback, 0)).ToString();
        }

        var (control, _) = await ControlClient.ConnectAsync(new ManagerAddress(mesh.Manager.LocalEndPoint, mesh.ManagerKey.Public), key, "node", linkAddress,
            (_, _, _) => ValueTask.FromResult("{}"u8.ToArray()), mesh.Log.CreateLogger("Rogue"), MeshHarness.Limit, CancellationToken.None);
        return new RogueNode(key, control, dataPlane);
    }

    /// <summary>Reports these links (as a request, so a refusal comes back).</summary>
    public Task ClaimLinksAsync(params (PubKey Peer, long RttMicros)[] links) =>
        Control.RequestAsync((byte)ControlOpcode.LinkReport, Report(links), ControlJsonContext.Default.LinkReportMessage, ControlJsonContext.Default.OkMessage);

    /// <summary>Keeps reporting these links every 200 ms (as a node does) until disposed.</summary>
    public void KeepClaiming(params (PubKey Peer, long RttMicros)[] links)
    {
        var report = Report(links);
        _reporting = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                await Control.NotifyAsync((byte)ControlOpcode.LinkReport, report, ControlJsonContext.Default.LinkReportMessage, _stop.Token);
                await Task.Delay(200, _stop.Token).ContinueWith(_ => { }, TaskScheduler.Default);
            }
        });
    }

    /// <summary>Registers an app; returns the refusal's code, or null when taken.</summary>
    public async Task<ControlErrorCode?> RegisterAppAsync(string name, string type)
    {
        try
        {
            await Control.RequestAsync((byte)ControlOpcode.AppRegister, new AppRegisterMessage { Name = name, Type = type },
                ControlJsonContext.Default.AppRegisterMessage, ControlJsonContext.Default.OkMessage).WaitAsync(MeshHarness.Limit);
            return null;
        }
        catch (ControlException ex)
        {
            return ex.Code;
        }
    }

    /// <summary>Asks for a route to <paramref name="to"/>; returns the refusal's code, or null when built.</summary>
    public async Task<ControlErrorCode?> RequestRouteAsync(PubKey to)
    {
        try
        {
            await Control.RequestAsync((byte)ControlOpcode.RouteRequest, new RouteRequestMessage { To = to.ToString() },
                ControlJsonContext.Default.RouteRequestMessage, ControlJsonContext.Default.RouteResultMessage).WaitAsync(MeshHarness.Limit);
            return null;
        }
        catch (ControlException ex)
        {
            return ex.Code;
        }
    }

    /// <summary>Sends a request with a raw JSON payload; returns the answer's bytes.</summary>
    public async Task<byte[]> RawAsync(ControlOpcode opcode, object payload) =>
        (await Control.RequestRawAsync((byte)opcode, JsonSerializer.SerializeToUtf8Bytes(payload)).WaitAsync(MeshHarness.Limit)).Payload;

    private static LinkReportMessage Report((PubKey Peer, long RttMicros)[] links) =>
        new() { Links = [.. links.Select(l => new LinkState { Peer = l.Peer.ToString(), Up = true, RttMicros = l.RttMicros })] };

    /// <summary>Stops reporting (the loop must have ended cleanly), closes its connection and data plane.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_reporting is not null)
        {
            await _reporting.WaitAsync(MeshHarness.Limit).ContinueWith(_ => { }, TaskScheduler.Default);
        }

        await Control.DisposeAsync();
        if (DataPlane is not null)
        {
            await DataPlane.DisposeAsync();
        }

        _key.Dispose();
        _stop.Dispose();
        // A report loop that died of anything but being stopped is a failure of the test's rogue, not of the manager.
        Assert.True(_reporting is null || _reporting.IsCompletedSuccessfully || _reporting.IsCanceled, $"the rogue's report loop ended {_reporting?.Status}: {_reporting?.Exception?.GetBaseException().Message}");
    }
}
