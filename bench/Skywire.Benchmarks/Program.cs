using BenchmarkDotNet.Running;

if (args is ["quick"])
{
    await Skywire.Benchmarks.QuickRun.RunAsync();
    return;
}
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
