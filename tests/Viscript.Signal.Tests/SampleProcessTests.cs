using System.Diagnostics;
using System.Reflection;

namespace Viscript.Signal.Tests;

/// <summary>End to end: the built sample program, opted in by env vars, under our server.</summary>
[Trait("Category", "E2E")]
public class SampleProcessTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static string SamplePath()
    {
        var configuration = typeof(SampleProcessTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Release";
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Skywire.slnx")))
        {
            dir = dir.Parent;
        }

        Assert.NotNull(dir);
        var path = Path.Combine(dir.FullName, "samples", "Viscript.Signal.Sample", "bin", configuration, "net10.0", "Viscript.Signal.Sample.dll");
        Assert.True(File.Exists(path), $"build the sample first: {path}");
        return path;
    }

    private static Process StartSample(TestServer server, ulong id, params string[] args) =>
        StartSample(server.EndPoint.ToString(), id, args);

    private static Process StartSample(string address, ulong id, params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(SamplePath());
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        info.Environment["SIGNAL_CLIENT"] = ""; // empty still enables, as in the original
        info.Environment["SIGNAL_SERVER_ADDRESS"] = address;
        info.Environment["SIGNAL_CLIENT_ID"] = id.ToString();
        return Process.Start(info)!;
    }

    private static async Task StopAsync(Process process)
    {
        if (!process.HasExited)
        {
            process.Kill();
            await process.WaitForExitAsync(CancellationToken.None);
        }

        process.Dispose();
    }

    [Fact]
    public async Task Sample_RegistersAnswersAndExitsZeroOnShutdown()
    {
        await using var server = await TestServer.StartAsync();
        var process = StartSample(server, 17);
        try
        {
            var info = await server.NextRegisteredAsync();
            Assert.Equal((17ul, process.Id, 1), (info.Id, info.Pid, info.Extension));
            await server.Server.PingAsync(17, Ct);
            var usage = await server.Server.TopAsync(17, Ct);
            Assert.Equal(process.Id, usage.Pid);
            Assert.True(usage.Rss > 1024 * 1024);

            Assert.Equal(process.Id, await server.Server.ShutdownAsync(17, Ct));
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await process.WaitForExitAsync(timeout.Token);
            Assert.Equal(0, process.ExitCode);
            Assert.Equal(17ul, (await server.NextDisconnectedAsync()).Id);
        }
        finally
        {
            await StopAsync(process);
        }
    }

    [Fact]
    public async Task Sample_WithShutdownToken_StopsGracefully()
    {
        await using var server = await TestServer.StartAsync();
        var process = StartSample(server, 18, "--graceful");
        try
        {
            await server.NextRegisteredAsync();
            Assert.Equal(process.Id, await server.Server.ShutdownAsync(18, Ct));
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await process.WaitForExitAsync(timeout.Token);
            Assert.Equal(3, process.ExitCode);
            Assert.Contains("stopping gracefully", await process.StandardOutput.ReadToEndAsync(Ct), StringComparison.Ordinal);
        }
        finally
        {
            await StopAsync(process);
        }
    }

    [Fact]
    public async Task Sample_BadServerAddress_RunsWithoutSignalInsteadOfCrashing()
    {
        var process = StartSample("no-port-here", 1);
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await process.WaitForExitAsync(timeout.Token);
            Assert.Equal(0, process.ExitCode);
            Assert.Contains("signal client disabled", await process.StandardError.ReadToEndAsync(Ct), StringComparison.Ordinal);
        }
        finally
        {
            await StopAsync(process);
        }
    }
}
