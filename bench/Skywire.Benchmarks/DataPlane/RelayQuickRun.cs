using System.Diagnostics;

namespace Skywire.Benchmarks.DataPlane;

/// <summary>
/// `dotnet Skywire.Benchmarks.dll relay-quick [rounds]`: <see cref="RelayBenchmarks"/> without BenchmarkDotNet, reporting
/// wall time and the process CPU time per datagram delivered through the relay. On a shared, overloaded machine the
/// CPU time is the steadier measure of cost (the wall time there mostly measures the scheduler); run two builds one
/// after the other, several rounds, for a before/after comparison.
/// </summary>
internal static class RelayQuickRun
{
    public static void Run(int rounds)
    {
        Console.WriteLine("| Datagram | Batch | Wall per datagram | CPU per datagram | Delivered |");
        Console.WriteLine("|---:|---:|---:|---:|---:|");
        foreach (var size in new[] { 1356, 64 })
        {
            foreach (var batch in new[] { 1, 32 })
            {
                var b = new RelayBenchmarks { DatagramSize = size, Batch = batch };
                b.Setup();
                b.SendBurst(spin: false); // warm-up
                var process = Process.GetCurrentProcess();
                for (var round = 0; round < rounds; round++)
                {
                    process.Refresh();
                    var cpu0 = process.TotalProcessorTime;
                    var sw = Stopwatch.StartNew();
                    long delivered = 0;
                    // Batches move datagrams ~5x cheaper: more bursts, so each sample is long enough for the CPU clock.
                    for (var i = 0; i < (batch == 1 ? 5 : 25); i++)
                    {
                        delivered += b.SendBurst(spin: false);
                    }

                    sw.Stop();
                    process.Refresh();
                    var cpu = process.TotalProcessorTime - cpu0;
                    Console.WriteLine($"| {size} | {batch} | {sw.Elapsed.TotalMicroseconds / delivered:0.0} us | {cpu.TotalMicroseconds / delivered:0.0} us | {delivered} |");
                }

                b.Cleanup();
            }
        }
    }
}
