using System.Security.Cryptography;
using Skywire.Apps.Socks;

namespace Skywire.Tests.Socks;

public class SocksRelayTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(20);

    private static async Task<byte[]> ReadToEndAsync(Stream stream)
    {
        var output = new MemoryStream();
        await stream.CopyToAsync(output).WaitAsync(Limit, Ct);
        return output.ToArray();
    }

    [Fact]
    public async Task Relay_BothDirections_ByteExact_WithHalfClose()
    {
        // left.A <-> [left.B relay right.A] <-> right.B
        var left = new DuplexStreamPair();
        var right = new DuplexStreamPair();
        var relay = SocksRelay.RunAsync(left.B, right.A, Ct);

        var up = RandomNumberGenerator.GetBytes(300_000);
        var down = RandomNumberGenerator.GetBytes(1_000_000);
        var sendUp = Task.Run(async () =>
        {
            await left.A.WriteAsync(up);
            await left.A.CompleteWritesAsync();
        }, Ct);

        // The far side sees the half-close as end of stream, and can still answer afterwards.
        Assert.Equal(up, await ReadToEndAsync(right.B));
        var receiving = ReadToEndAsync(left.A);
        await right.B.WriteAsync(down, Ct);
        await right.B.CompleteWritesAsync(Ct);
        Assert.Equal(down, await receiving);
        await sendUp;

        var result = await relay.WaitAsync(Limit, Ct);
        Assert.Equal(up.Length, result.BytesAToB);
        Assert.Equal(down.Length, result.BytesBToA);
        Assert.True(result.Clean);
    }

    [Fact]
    public async Task Relay_OneSideBreaks_TearsDownBoth()
    {
        var left = new DuplexStreamPair();
        var right = new DuplexStreamPair();
        var relay = SocksRelay.RunAsync(left.B, right.A, Ct);
        await left.A.WriteAsync(new byte[100], Ct);
        var got = new byte[100];
        await right.B.ReadExactlyAsync(got, Ct).AsTask().WaitAsync(Limit, Ct);

        // The far side vanishes while the near side keeps sending.
        right.B.Dispose();
        var sending = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    await left.A.WriteAsync(new byte[4096]);
                }
            }
            catch (IOException)
            {
            }
        }, Ct);

        var result = await relay.WaitAsync(Limit, Ct);
        Assert.False(result.Clean);
        await sending.WaitAsync(Limit, Ct);
        Assert.True(left.B.IsDisposed);
        Assert.True(right.A.IsDisposed);
    }

    [Fact]
    public async Task Relay_Cancelled_Ends()
    {
        var left = new DuplexStreamPair();
        var right = new DuplexStreamPair();
        using var cts = new CancellationTokenSource();
        var relay = SocksRelay.RunAsync(left.B, right.A, cts.Token);
        await cts.CancelAsync();
        var result = await relay.WaitAsync(Limit, Ct);
        Assert.False(result.Clean);
    }
}
