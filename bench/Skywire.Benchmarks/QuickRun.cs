using System.Diagnostics;
using Skywire.Benchmarks.Mux;
using Skywire.Benchmarks.Routing;

namespace Skywire.Benchmarks;

/// <summary>
/// `dotnet Skywire.Benchmarks.dll quick`: a few timed repetitions of the mux and routing benchmarks, reporting
/// wall time and the process CPU time they consumed. On a shared, overloaded machine the CPU time is the
/// steadier measure of cost; BenchmarkDotNet (any other arguments) remains the reference.
/// </summary>
internal static class QuickRun
{
    public static async Task RunAsync()
    {
        Console.WriteLine($"Machine: {Environment.ProcessorCount} CPUs, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}");
        Console.WriteLine();
        Console.WriteLine("| Benchmark | Parameters | Wall per op | CPU per op | Derived |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (var size in new[] { 1400, 8192 })
        {
            foreach (var streams in new[] { 1, 8 })
            {
                var b = new MuxThroughputBenchmarks { DatagramSize = size, Streams = streams };
                b.Setup();
                await b.Transfer(); // warm-up
                var (wall, cpu) = await MeasureAsync(3, b.Transfer);
                b.Cleanup();
                var mb = MuxThroughputBenchmarks.TotalBytes / 1e6;
                Console.WriteLine($"| Mux transfer 64 MiB | datagram {size} B, {streams} stream(s) | {wall.TotalMilliseconds:0} ms | {cpu.TotalMilliseconds:0} ms | {mb / wall.TotalSeconds:0} MB/s wall, {mb / cpu.TotalSeconds:0} MB per CPU-s |");
            }
        }
        foreach (var nodes in new[] { 10_000, 100_000 })
        {
            var r = new RouteComputerBenchmarks { Nodes = nodes };
            var build = Stopwatch.StartNew();
            r.Setup();
            Console.WriteLine($"| Graph build | {nodes} nodes, ~{3 * nodes} links | {build.Elapsed.TotalMilliseconds:0} ms | | |");
            await Report(r, nodes, "ShortestPath", 20, () => r.ShortestPath());
            await Report(r, nodes, "3 routes, disjoint preferred", 10, () => r.ThreeRoutesDisjointPreferred());
            await Report(r, nodes, "link change, then ShortestPath", 20, () => r.LinkChangeThenRoute());
            await Report(r, nodes, "Distances to all nodes", 10, () => r.AllDistances());
        }
    }

    private static async Task Report(RouteComputerBenchmarks r, int nodes, string name, int ops, Func<object?> op)
    {
        op();
        var (wall, cpu) = await MeasureAsync(ops, () =>
        {
            op();
            return Task.CompletedTask;
        });
        Console.WriteLine($"| Route {name} | {nodes} nodes | {wall.TotalMilliseconds:0.00} ms | {cpu.TotalMilliseconds:0.00} ms | |");
        _ = r;
    }

    private static async Task<(TimeSpan Wall, TimeSpan Cpu)> MeasureAsync(int ops, Func<Task> op)
    {
        var process = Process.GetCurrentProcess();
        process.Refresh();
        var cpu0 = process.TotalProcessorTime;
        var sw = Stopwatch.StartNew();
        for (var i = 0; i < ops; i++)
        {
            await op();
        }
        sw.Stop();
        process.Refresh();
        return (sw.Elapsed / ops, (process.TotalProcessorTime - cpu0) / ops);
    }
}
