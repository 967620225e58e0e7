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

if (args is ["aead-quick", ..])
{
    Skywire.Benchmarks.DataPlane.AeadQuickRun.Run(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 5);
    return;
}

if (args is ["routing-quick", ..])
{
    Skywire.Benchmarks.Routing.RoutingQuickRun.Run(
        args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 100_000,
        args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 10_000);
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
