using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Skywire.Core.Crypto;
using Skywire.Core.Messenger;
using Skywire.Protocol;

// Messenger throughput and latency (issue 19.6, docs/benchmarks.md "Messenger relay vs a plain TCP relay"):
//   relay --listen 127.0.0.1:0     a minimal plain TCP relay (the baseline), as its own process
//   load  --target messenger|relay --address PUBKEY@IP:PORT|IP:PORT --pairs N --messages M --size B --window W
//   idle  --address PUBKEY@IP:PORT --clients N    connects N authenticated idle clients, prints when done, waits
// bench/messenger-bench.sh runs the messenger (`skywire messenger`) and the relay as processes and drives them.
return args.Length > 0 && args[0] == "relay" ? await PlainRelay.RunAsync(args)
    : args.Length > 0 && args[0] == "load" ? await Load.RunAsync(args)
    : args.Length > 0 && args[0] == "idle" ? await Idle.RunAsync(args)
    : Usage();

static int Usage()
{
    Console.Error.WriteLine("usage: relay --listen IP:PORT | load --target messenger|relay --address ADDR [--pairs N] [--messages M] [--size B] [--window W] | idle --address ADDR --clients N");
    return 2;
}

/// <summary>Argument helpers.</summary>
internal static class Args
{
    public static string Get(string[] args, string name, string fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }

    public static int Int(string[] args, string name, int fallback) => int.Parse(Get(args, name, fallback.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);
}

/// <summary>
/// The baseline: a hub that relays length-prefixed frames between registered ids over plain TCP, no crypto. A client
/// sends <c>u32 id</c> once, then frames <c>u32 to | u32 length | payload</c>; the hub writes <c>u32 length | payload</c>
/// to the connection registered under <c>to</c>. One read loop per connection, buffered writes (like the messenger).
/// </summary>
internal static class PlainRelay
{
    public static async Task<int> RunAsync(string[] args)
    {
        var listen = IPEndPoint.Parse(Args.Get(args, "--listen", "127.0.0.1:0"));
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(listen);
        listener.Listen(1024);
        Console.WriteLine($"relay listening on {listener.LocalEndPoint}");
        var clients = new System.Collections.Concurrent.ConcurrentDictionary<uint, (NetworkStream Stream, SemaphoreSlim Lock)>();
        while (true)
        {
            var socket = await listener.AcceptAsync();
            socket.NoDelay = true;
            _ = ServeAsync(socket, clients);
        }
    }

    private static async Task ServeAsync(Socket socket, System.Collections.Concurrent.ConcurrentDictionary<uint, (NetworkStream Stream, SemaphoreSlim Lock)> clients)
    {
        var stream = new NetworkStream(socket, ownsSocket: true);
        var input = new BufferedStream(stream, 64 * 1024);
        var header = new byte[8];
        try
        {
            await input.ReadExactlyAsync(header.AsMemory(0, 4));
            clients[BinaryPrimitives.ReadUInt32BigEndian(header)] = (stream, new SemaphoreSlim(1, 1));
            var buffer = new byte[70 * 1024];
            while (true)
            {
                await input.ReadExactlyAsync(header);
                var to = BinaryPrimitives.ReadUInt32BigEndian(header);
                var length = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(4));
                BinaryPrimitives.WriteInt32BigEndian(buffer, length);
                await input.ReadExactlyAsync(buffer.AsMemory(4, length));
                if (clients.TryGetValue(to, out var target))
                {
                    await target.Lock.WaitAsync();
                    try
                    {
                        await target.Stream.WriteAsync(buffer.AsMemory(0, 4 + length));
                    }
                    finally
                    {
                        target.Lock.Release();
                    }
                }
            }
        }
        catch (Exception ex) when (ex is IOException or EndOfStreamException or ObjectDisposedException)
        {
            await stream.DisposeAsync();
        }
    }
}

/// <summary>
/// Closed-loop load: N sender/receiver pairs; each sender keeps at most W messages in flight (sent, not yet received by
/// its receiver) and sends M messages of B bytes; each message carries its send time, so the receiver records the
/// latency. Prints one line: messages/s, p50/p99/max latency (ms), and the client process's CPU seconds.
/// </summary>
internal static class Load
{
    public static async Task<int> RunAsync(string[] args)
    {
        var target = Args.Get(args, "--target", "messenger");
        var address = Args.Get(args, "--address", "");
        var pairs = Args.Int(args, "--pairs", 20);
        var messages = Args.Int(args, "--messages", 20_000);
        var size = Args.Int(args, "--size", 1024);
        var window = Args.Int(args, "--window", 64);
        var links = target == "relay" ? await RelayLinks(address, pairs) : await MessengerLinks(address, pairs);
        var latencies = new double[pairs * messages];
        var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        var wall = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, pairs).Select(p => RunPairAsync(links[p], messages, size, window, latencies.AsMemory(p * messages, messages))));
        var seconds = wall.Elapsed.TotalSeconds;
        var cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds;
        Array.Sort(latencies);
        var handshakes = links.Sum(l => l.Handshakes());
        Console.WriteLine(FormattableString.Invariant(
            $"{target} pairs={pairs} messages={pairs * messages} size={size} window={window} rate={pairs * messages / seconds:F0}/s p50={latencies[latencies.Length / 2]:F2}ms p99={latencies[(int)(latencies.Length * 0.99)]:F2}ms max={latencies[^1]:F2}ms client_cpu={cpu:F2}s wall={seconds:F2}s handshakes={handshakes}"));
        foreach (var l in links)
        {
            await l.DisposeAsync();
        }

        return 0;
    }

    private static async Task RunPairAsync(Pair pair, int messages, int size, int window, Memory<double> latencies)
    {
        var credits = new SemaphoreSlim(window, window);
        var receive = Task.Run(async () =>
        {
            for (var i = 0; i < messages; i++)
            {
                var data = await pair.ReceiveAsync();
                var sent = BinaryPrimitives.ReadInt64BigEndian(data.Span);
                latencies.Span[i] = Stopwatch.GetElapsedTime(sent).TotalMilliseconds;
                credits.Release();
            }
        });
        var payload = new byte[size];
        for (var i = 0; i < messages; i++)
        {
            await credits.WaitAsync();
            BinaryPrimitives.WriteInt64BigEndian(payload, Stopwatch.GetTimestamp());
            await pair.SendAsync(payload);
        }

        await receive;
    }

    private static async Task<Pair[]> MessengerLinks(string address, int pairs)
    {
        var at = address.IndexOf('@', StringComparison.Ordinal);
        var options = new MessengerClientOptions { EndPoint = IPEndPoint.Parse(address[(at + 1)..]), MessengerKey = PubKey.Parse(address[..at]), Agent = "messenger-bench", MessageBufferCapacity = 100_000 };
        var result = new Pair[pairs];
        for (var p = 0; p < pairs; p++)
        {
            var sender = await MessengerClient.ConnectAsync(options, KeyPair.Generate());
            var receiver = await MessengerClient.ConnectAsync(options, KeyPair.Generate());
            result[p] = new MessengerPair(sender, receiver);
        }

        return result;
    }

    private static async Task<Pair[]> RelayLinks(string address, int pairs)
    {
        var endPoint = IPEndPoint.Parse(address);
        var result = new Pair[pairs];
        for (var p = 0; p < pairs; p++)
        {
            result[p] = new RelayPair(await RelayPair.ConnectAsync(endPoint, (uint)(2 * p)), await RelayPair.ConnectAsync(endPoint, (uint)(2 * p + 1)), (uint)(2 * p + 1));
        }

        // The relay registers an id when it reads it: a short settle so the first frames find their target.
        await Task.Delay(500);
        return result;
    }
}

internal abstract class Pair : IAsyncDisposable
{
    public abstract ValueTask SendAsync(byte[] payload);

    public abstract ValueTask<ReadOnlyMemory<byte>> ReceiveAsync();

    public virtual long Handshakes() => 0;

    public abstract ValueTask DisposeAsync();
}

internal sealed class MessengerPair(MessengerClient sender, MessengerClient receiver) : Pair
{
    public override async ValueTask SendAsync(byte[] payload) => await sender.SendAsync(receiver.Key, payload);

    public override async ValueTask<ReadOnlyMemory<byte>> ReceiveAsync() => (await receiver.Messages.ReadAsync()).Data;

    public override long Handshakes() => sender.SessionHandshakes + receiver.SessionHandshakes;

    public override async ValueTask DisposeAsync()
    {
        await sender.DisposeAsync();
        await receiver.DisposeAsync();
    }
}

internal sealed class RelayPair(NetworkStream sender, NetworkStream receiver, uint to) : Pair
{
    private readonly BufferedStream _in = new(receiver, 64 * 1024);
    private readonly byte[] _header = new byte[8];
    private readonly byte[] _frame = new byte[8 + 70 * 1024];

    public static async Task<NetworkStream> ConnectAsync(IPEndPoint endPoint, uint id)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(endPoint);
        var stream = new NetworkStream(socket, ownsSocket: true);
        var hello = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(hello, id);
        await stream.WriteAsync(hello);
        return stream;
    }

    public override async ValueTask SendAsync(byte[] payload)
    {
        BinaryPrimitives.WriteUInt32BigEndian(_frame, to);
        BinaryPrimitives.WriteInt32BigEndian(_frame.AsSpan(4), payload.Length);
        payload.CopyTo(_frame, 8);
        await sender.WriteAsync(_frame.AsMemory(0, 8 + payload.Length));
    }

    public override async ValueTask<ReadOnlyMemory<byte>> ReceiveAsync()
    {
        await _in.ReadExactlyAsync(_header.AsMemory(0, 4));
        var data = new byte[BinaryPrimitives.ReadInt32BigEndian(_header)];
        await _in.ReadExactlyAsync(data);
        return data;
    }

    public override async ValueTask DisposeAsync()
    {
        await sender.DisposeAsync();
        await receiver.DisposeAsync();
    }
}

/// <summary>Idle authenticated clients, for the connection-capacity figure (the script reads the messenger's RSS).</summary>
internal static class Idle
{
    public static async Task<int> RunAsync(string[] args)
    {
        var address = Args.Get(args, "--address", "");
        var count = Args.Int(args, "--clients", 1000);
        var at = address.IndexOf('@', StringComparison.Ordinal);
        var options = new MessengerClientOptions { EndPoint = IPEndPoint.Parse(address[(at + 1)..]), MessengerKey = PubKey.Parse(address[..at]), Agent = "messenger-bench-idle", PingInterval = TimeSpan.FromMinutes(10) };
        var clients = new List<MessengerClient>(count);
        var gate = new SemaphoreSlim(4);
        var failures = 0;
        var tasks = Enumerable.Range(0, count).Select(async _ =>
        {
            await gate.WaitAsync();
            try
            {
                // A loaded machine can miss the 10 s connect timeout: a few tries, then counted as failed.
                for (var attempt = 0; attempt < 3; attempt++)
                {
                    try
                    {
                        var c = await MessengerClient.ConnectAsync(options with { ConnectTimeout = TimeSpan.FromSeconds(30) }, KeyPair.Generate());
                        lock (clients)
                        {
                            clients.Add(c);
                        }

                        return;
                    }
                    catch (MessengerException)
                    {
                    }
                }

                Interlocked.Increment(ref failures);
            }
            finally
            {
                gate.Release();
            }
        });
        await Task.WhenAll(tasks);
        Console.WriteLine($"idle clients={clients.Count} failed={failures}");
        Console.Out.Flush();
        // Held until stdin closes (the script reads the messenger's memory meanwhile).
        await Console.In.ReadToEndAsync();
        foreach (var c in clients)
        {
            await c.DisposeAsync();
        }

        return 0;
    }
}
