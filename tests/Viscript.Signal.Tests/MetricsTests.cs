using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Viscript.Signal.Tests;

public class MetricsTests
{
    [Fact]
    public async Task Calls_AreCountedByOpAndOutcome()
    {
        var seen = new ConcurrentQueue<(string Instrument, string Tags)>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "Viscript.Signal")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((instrument, _, tags, _) =>
            seen.Enqueue((instrument.Name, string.Join(',', tags.ToArray().Select(t => $"{t.Key}={t.Value}")))));
        listener.Start();

        // TOP timing out is unique to this test, so its measurement cannot come from a test running alongside.
        await using var server = await TestServer.StartAsync(new SignalServerOptions { RequestTimeout = TimeSpan.FromMilliseconds(200) });
        await using var peer = await RawPeer.ConnectAsync(server.EndPoint);
        await peer.RegisterAsync(1);
        await Assert.ThrowsAsync<SignalException>(() => server.Server.TopAsync(1, TestContext.Current.CancellationToken));

        Assert.Contains(("signal.calls", "op=TOP,outcome=timeout"), seen);
        Assert.Contains(("signal.frames.received", "side=server,type=normal"), seen);
        Assert.Contains(("signal.frames.sent", "side=server,type=ack"), seen);
    }
}
