using System.Buffers.Binary;
using System.Net.Sockets;
using Skywire.Core.AppApi;
using Skywire.Core.Node;
using Skywire.Core.Sdk;
using Skywire.IntegrationTests.Mesh;
using Skywire.Protocol.AppApi;

namespace Skywire.IntegrationTests.Datagrams;

/// <summary>
/// Datagram flows through the app API (docs/protocol.md §6.3, §7.1): apps on two nodes attach to a stream's flow and
/// exchange batches of datagrams across 1 and 3 hops; malformed records are dropped and counted, and the node goes on.
/// </summary>
public sealed class DatagramFlowTests
{
    private static readonly TimeSpan Limit = MeshHarness.Limit;

    private sealed record Pair(SkywireApp ClientApp, SkywireApp ServerApp, SkywireStream ClientStream, SkywireStream ServerStream) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await ClientStream.DisposeAsync();
            await ServerStream.DisposeAsync();
            await ClientApp.DisposeAsync();
            await ServerApp.DisposeAsync();
        }
    }

    private static async Task<Pair> ConnectAsync(NodeHost from, NodeHost to)
    {
        var server = await MeshHarness.AppAsync(to);
        await server.RegisterAsync("dg-sink", "test");
        var client = await MeshHarness.AppAsync(from);
        var accept = server.AcceptAsync();
        var outbound = await client.DialAsync(to.NodeKey, "dg-sink").WaitAsync(Limit);
        var inbound = await accept.WaitAsync(Limit);
        return new Pair(client, server, outbound, inbound);
    }

    /// <summary>Datagram i: its index (u32) then bytes derived from it, so any mix-up shows.</summary>
    private static int Fill(Span<byte> buffer, int index, int size)
    {
        BinaryPrimitives.WriteInt32BigEndian(buffer, index);
        for (var i = 4; i < size; i++)
        {
            buffer[i] = (byte)(index * 31 + i);
        }

        return size;
    }

    private static bool Check(ReadOnlySpan<byte> datagram, out int index)
    {
        index = BinaryPrimitives.ReadInt32BigEndian(datagram);
        for (var i = 4; i < datagram.Length; i++)
        {
            if (datagram[i] != (byte)(index * 31 + i))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Sends <paramref name="count"/> datagrams in batches until the receiver saw them all (resending what was lost).</summary>
    private static async Task ExchangeAsync(SkywireDatagrams sender, SkywireDatagrams receiver, int count, int size)
    {
        var seen = new bool[count];
        var received = 0;
        var receiving = Task.Run(async () =>
        {
            var reader = new DatagramRecordReader();
            while (received < count && await receiver.ReceiveAsync(reader))
            {
                while (reader.TryRead(out var datagram))
                {
                    Assert.Equal(size, datagram.Length);
                    Assert.True(Check(datagram, out var index), $"datagram {index} corrupted");
                    if (!seen[index])
                    {
                        seen[index] = true;
                        Interlocked.Increment(ref received);
                    }
                }
            }
        });

        var writer = new DatagramRecordWriter();
        var deadline = DateTime.UtcNow + Limit;
        while (Volatile.Read(ref received) < count)
        {
            Assert.True(DateTime.UtcNow < deadline, $"only {received} of {count} datagrams arrived");
            for (var i = 0; i < count; i++)
            {
                if (seen[i])
                {
                    continue;
                }

                var slot = writer.Reserve(size);
                if (slot.IsEmpty)
                {
                    await sender.SendRecordsAsync(writer.WrittenMemory);
                    writer.Clear();
                    slot = writer.Reserve(size);
                }

                writer.Commit(Fill(slot, i, size));
            }

            if (writer.Length > 0)
            {
                await sender.SendRecordsAsync(writer.WrittenMemory);
                writer.Clear();
            }

            await Task.WhenAny(receiving, Task.Delay(200));
        }

        await receiving.WaitAsync(Limit);
    }

    [Fact]
    public async Task OneHop_BatchesBothWays_Arrive()
    {
        await using var mesh = MeshHarness.Start();
        var (a, b) = (await mesh.AddNodeAsync(), await mesh.AddNodeAsync());
        await mesh.LinkAsync(a, b);
        await using var pair = await ConnectAsync(a, b);
        Assert.NotNull(pair.ClientStream.DatagramHandle);
        Assert.NotNull(pair.ServerStream.DatagramHandle);
        await using var up = await pair.ClientApp.OpenDatagramsAsync(pair.ClientStream).WaitAsync(Limit);
        await using var down = await pair.ServerApp.OpenDatagramsAsync(pair.ServerStream).WaitAsync(Limit);
        Assert.Equal(b.DataPlane.MaxSessionDatagram - 5, up.MaxDatagram);

        await ExchangeAsync(up, down, 2000, up.MaxDatagram);
        await ExchangeAsync(down, up, 2000, 100);
        Assert.True(b.FlowStatistics.Received >= 2000);
        Assert.True(a.FlowStatistics.Sent >= 2000);

        // The stream still works beside the flow.
        await pair.ClientStream.WriteAsync("after"u8.ToArray());
        var buffer = new byte[5];
        await pair.ServerStream.ReadExactlyAsync(buffer).AsTask().WaitAsync(Limit);
        Assert.Equal("after"u8.ToArray(), buffer);
    }

    [Fact]
    public async Task ThreeHops_RelaysForwardDatagrams()
    {
        await using var mesh = MeshHarness.Start();
        var nodes = await mesh.AddNodesAsync(4);
        for (var i = 0; i < 3; i++)
        {
            await mesh.LinkAsync(nodes[i], nodes[i + 1]);
        }

        await using var pair = await ConnectAsync(nodes[0], nodes[3]);
        await using var up = await pair.ClientApp.OpenDatagramsAsync(pair.ClientStream).WaitAsync(Limit);
        await using var down = await pair.ServerApp.OpenDatagramsAsync(pair.ServerStream).WaitAsync(Limit);
        await ExchangeAsync(up, down, 1000, 1200);
        await ExchangeAsync(down, up, 1000, 1200);
        Assert.True(nodes[1].DataPlane.Statistics.Forwarded >= 2000);
    }

    [Fact]
    public async Task MalformedRecords_DroppedAndCounted_NodeGoesOn()
    {
        await using var mesh = MeshHarness.Start();
        var (a, b) = (await mesh.AddNodeAsync(), await mesh.AddNodeAsync());
        await mesh.LinkAsync(a, b);
        await using var pair = await ConnectAsync(a, b);
        await using var down = await pair.ServerApp.OpenDatagramsAsync(pair.ServerStream).WaitAsync(Limit);

        // A raw datagram connection: a record longer than the flow carries, the largest record the framing allows, then a
        // good record, then the connection ends inside a record.
        using (var raw = await RawAttachAsync(a, pair.ClientStream.DatagramHandle!))
        {
            var bytes = new List<byte>();
            AddRecord(bytes, new byte[a.DataPlane.MaxSessionDatagram]);
            AddRecord(bytes, new byte[ushort.MaxValue]);
            var good = new byte[64];
            Fill(good, 7, good.Length);
            AddRecord(bytes, good);
            bytes.AddRange([0x05, 0x00, 1, 2, 3]);
            raw.Send(bytes.ToArray());
            raw.Shutdown(SocketShutdown.Send);
            var reader = new DatagramRecordReader();
            Assert.True(await down.ReceiveAsync(reader).AsTask().WaitAsync(Limit));
            Assert.True(reader.TryRead(out var datagram));
            Assert.True(Check(datagram, out var index));
            Assert.Equal(7, index);
            await MeshHarness.WaitUntilAsync(() => a.FlowStatistics.TooLarge == 2 && a.FlowStatistics.Malformed == 1, "malformed records counted");
        }

        // Unknown handles and a second attach are refused with a code, not a crash.
        using (var raw = new Socket(SocketType.Stream, ProtocolType.Tcp))
        {
            var (op, payload) = await RawRequestAsync(raw, a, new DatagramsMessage { Stream = "00" });
            Assert.Equal((byte)AppApiOpcode.Error, op);
            Assert.Equal(AppApiErrorCode.NotFound, FrameIo.Parse(payload, AppApiJsonContext.Default.AppErrorMessage).Code);
        }

        var again = await Assert.ThrowsAsync<AppApiException>(() => pair.ServerApp.OpenDatagramsAsync(pair.ServerStream).WaitAsync(Limit));
        Assert.Equal(AppApiErrorCode.Conflict, again.Code);

        // The flow and the node still work. The raw connection's attachment is released once node a has read that
        // connection to its end, which may come just after the counters above: until then a new attach is a Conflict.
        await using var up = await AttachWhenReleasedAsync(pair.ClientApp, pair.ClientStream);
        await ExchangeAsync(up, down, 200, 500);

        static async Task<SkywireDatagrams> AttachWhenReleasedAsync(SkywireApp app, SkywireStream stream)
        {
            var deadline = DateTime.UtcNow + Limit;
            while (true)
            {
                try
                {
                    return await app.OpenDatagramsAsync(stream).WaitAsync(Limit);
                }
                catch (AppApiException ex) when (ex.Code == AppApiErrorCode.Conflict && DateTime.UtcNow < deadline)
                {
                    await Task.Delay(20, TestContext.Current.CancellationToken);
                }
            }
        }
    }

    [Fact]
    public async Task StreamEnds_FlowEnds_AndDatagramsForItAreCounted()
    {
        await using var mesh = MeshHarness.Start();
        var (a, b) = (await mesh.AddNodeAsync(), await mesh.AddNodeAsync());
        await mesh.LinkAsync(a, b);
        var pair = await ConnectAsync(a, b);
        var up = await pair.ClientApp.OpenDatagramsAsync(pair.ClientStream).WaitAsync(Limit);
        await using var down = await pair.ServerApp.OpenDatagramsAsync(pair.ServerStream).WaitAsync(Limit);
        await ExchangeAsync(up, down, 10, 100);

        // The server app aborts its stream: its node closes the flow and the datagram connection ends.
        pair.ServerStream.Abort();
        var reader = new DatagramRecordReader();
        Assert.False(await down.ReceiveAsync(reader).AsTask().WaitAsync(Limit));
        await MeshHarness.WaitUntilAsync(() =>
        {
            try
            {
                up.Send(new byte[10]);
                return b.FlowStatistics.UnknownFlow > 0 || a.FlowStatistics.Closed > 0;
            }
            catch (IOException)
            {
                return true; // the client's flow closed too
            }
        }, "datagrams after the stream's end dropped and counted");
        up.Dispose();
        await pair.DisposeAsync();
    }

    private static void AddRecord(List<byte> bytes, byte[] datagram)
    {
        bytes.Add((byte)(datagram.Length >> 8));
        bytes.Add((byte)datagram.Length);
        bytes.AddRange(datagram);
    }

    /// <summary>Opens a datagram connection by hand (hello, Datagrams request) and returns the socket.</summary>
    private static async Task<Socket> RawAttachAsync(NodeHost node, string handle)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        var (op, _) = await RawRequestAsync(socket, node, new DatagramsMessage { Stream = handle });
        Assert.Equal((byte)AppApiOpcode.Datagrams | 0x80, op);
        return socket;
    }

    /// <summary>Connects, says hello and sends one Datagrams request; returns the answer's opcode and payload.</summary>
    private static async Task<(byte Opcode, byte[] Payload)> RawRequestAsync(Socket socket, NodeHost node, DatagramsMessage request)
    {
        await socket.ConnectAsync(node.AppsEndPoint);
        var stream = new NetworkStream(socket, ownsSocket: false);
        await FrameIo.WriteFrameAsync(stream, (byte)AppApiOpcode.Hello, 1, new AppHelloMessage { Version = 1, Token = node.AppToken }, AppApiJsonContext.Default.AppHelloMessage, default);
        Assert.NotNull(await FrameIo.ReadFrameAsync(stream, AppApiProtocol.MaxFrameSize, default));
        await FrameIo.WriteFrameAsync(stream, (byte)AppApiOpcode.Datagrams, 2, request, AppApiJsonContext.Default.DatagramsMessage, default);
        var answer = await FrameIo.ReadFrameAsync(stream, AppApiProtocol.MaxFrameSize, default);
        return (answer!.Value.Opcode, answer.Value.Payload);
    }
}
