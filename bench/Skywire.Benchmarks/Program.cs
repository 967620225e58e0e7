using BenchmarkDotNet.Running;

if (args is ["quick"])
{
    await Skywire.Benchmarks.QuickRun.RunAsync();
    return;
}
if (args is ["store", ..])
{
    await Skywire.Benchmarks.Store.StoreBench.RunAsync(args);
    return;
}
if (args is ["impair"])
{
    Environment.ExitCode = Skywire.Benchmarks.Wan.ImpairRelayTool.Run(Console.In, Console.Out);
    return;
}
if (args is ["relay-quick", ..])
{
    Skywire.Benchmarks.DataPlane.RelayQuickRun.Run(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 3);
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
