using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Skywire.Apps.Socks;
using Skywire.TestKit.Http;

// Helper processes for bench/socks-bench.sh. Each long-running mode prints "PORT <n>" on stdout once
// listening and runs until it is killed (the script stops it by pid).
//   stack                      socks-client -> tunnel over loopback TCP -> socks-server (the SOCKS layer without the mesh)
//   mesh HOPS                  socks-client -> in-process mesh (manager + HOPS+1 nodes in a chain, UDP links) -> socks-server
//   http                       HTTP/1.1 responder (TestKit's TestHttpServer): GET /bytes/N answers N bytes
//   latency PROXY TARGET N     N sequential SOCKS5 CONNECTs; prints set-up latency percentiles in microseconds
// SOCKS_BENCH_SPARE_MS=N sets socks-client's spare stream lifetime for stack and mesh (0: no spare), for before/after runs.
var clientOptions = SocksClientOptions.Default with { Listen = new IPEndPoint(IPAddress.Loopback, 0) };
if (int.TryParse(Environment.GetEnvironmentVariable("SOCKS_BENCH_SPARE_MS"), out var spareMs))
{
    clientOptions = clientOptions with { SpareStreamLifetime = TimeSpan.FromMilliseconds(spareMs) };
}

if (args.Length == 0)
{
    Console.Error.WriteLine("usage: Skywire.SocksBench stack | http | latency PROXY(ip:port) TARGET(ip:port) COUNT");
    return 2;
}

switch (args[0])
{
    case "stack":
    {
        var server = new SocksServer(SocksServerOptions.Default with { AllowLoopbackTargets = true });
        await using var exit = new SocksTcpStandIn(server);
        await using var client = new SocksClient(clientOptions, exit.DialAsync);
        var endPoint = client.Start();
        Console.WriteLine($"PORT {endPoint.Port}");
        await RunUntilKilledAsync();
        return 0;
    }

    case "mesh" when args.Length == 2:
    {
        var hops = int.Parse(args[1]);
        await using var mesh = await BenchMesh.StartAsync(hops);
        using var stop = new CancellationTokenSource();
        var serverReady = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var server = SocksApps.RunServerAsync(new SocksAppBinding(mesh.Exit.AppsEndPoint, mesh.Exit.AppToken, "exit"),
            SocksServerOptions.Default with { AllowLoopbackTargets = true }, null, serverReady.SetResult, stop.Token);
        await serverReady.Task;
        var clientReady = new TaskCompletionSource<IPEndPoint>(TaskCreationOptions.RunContinuationsAsynchronously);
        var client = SocksApps.RunClientAsync(new SocksAppBinding(mesh.Entry.AppsEndPoint, mesh.Entry.AppToken, "entry"), null,
            clientOptions, null, (ep, _) => clientReady.SetResult(ep), stop.Token);
        var endPoint = await clientReady.Task;
        Console.WriteLine($"PORT {endPoint.Port}");
        await RunUntilKilledAsync();
        return 0;
    }

    case "http":
    {
        // The tests' HTTP server (Kestrel): GET /bytes/N answers N bytes, one request per connection.
        await using var http = new TestHttpServer();
        Console.WriteLine($"PORT {http.Port}");
        await RunUntilKilledAsync();
        return 0;
    }

    case "latency" when args.Length == 4:
    {
        var proxy = IPEndPoint.Parse(args[1]);
        var target = IPEndPoint.Parse(args[2]);
        var count = int.Parse(args[3]);
        var samples = new List<double>(count);
        var phases = new[] { new List<double>(count), new List<double>(count), new List<double>(count) };
        var buffer = new byte[600];
        for (var i = 0; i < count + 10; i++)
        {
            var watch = Stopwatch.StartNew();
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync(proxy);
            var connected = watch.Elapsed.TotalMicroseconds;
            using var stream = new NetworkStream(socket);
            // Greeting, then the request once the method is chosen, as curl does (microsocks needs the wait).
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await stream.WriteAsync(buffer.AsMemory(0, SocksCodec.WriteGreeting(buffer, SocksAuthMethod.NoAuthentication)), timeout.Token);
            await stream.ReadExactlyAsync(buffer.AsMemory(0, 2), timeout.Token);
            var methodChosen = watch.Elapsed.TotalMicroseconds;
            await stream.WriteAsync(buffer.AsMemory(0, SocksCodec.WriteRequest(buffer, SocksCommand.Connect, SocksEndpoint.FromIP(target))), timeout.Token);
            await stream.ReadExactlyAsync(buffer.AsMemory(0, 10), timeout.Token);
            if (buffer[1] != 0)
            {
                Console.Error.WriteLine($"connect failed with reply {buffer[1]}");
                return 1;
            }

            watch.Stop();
            if (i >= 10)
            {
                // The first 10 warm up the JIT and the pools on every side.
                samples.Add(watch.Elapsed.TotalMicroseconds);
                phases[0].Add(connected);
                phases[1].Add(methodChosen - connected);
                phases[2].Add(watch.Elapsed.TotalMicroseconds - methodChosen);
            }
        }

        samples.Sort();
        foreach (var phase in phases)
        {
            phase.Sort();
        }

        static double P(List<double> sorted, double q) => sorted[(int)Math.Min(sorted.Count - 1, Math.Round(q * (sorted.Count - 1)))];
        // The p50 of each phase: TCP connect, greeting -> method selection, request -> reply (the tunnel's set-up).
        Console.WriteLine($"count={samples.Count} mean_us={samples.Average():0} p50_us={P(samples, 0.5):0} p90_us={P(samples, 0.9):0} p99_us={P(samples, 0.99):0}"
            + $" phases_p50_us=connect:{P(phases[0], 0.5):0},greeting:{P(phases[1], 0.5):0},request:{P(phases[2], 0.5):0}");
        return 0;
    }

    default:
        Console.Error.WriteLine($"unknown mode '{string.Join(' ', args)}'");
        return 2;
}

// Until SIGTERM or SIGINT: the HTTP server (Kestrel) takes over the default SIGTERM handling, so waiting for ever would
// keep the script's cleanup waiting for ever too.
static async Task RunUntilKilledAsync()
{
    var stopped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context => { context.Cancel = true; stopped.TrySetResult(); });
    using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, context => { context.Cancel = true; stopped.TrySetResult(); });
    await stopped.Task;
}
