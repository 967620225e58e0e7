using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Viscript.Cli;
using Viscript.Tests.Support;

namespace Viscript.Tests.EndToEnd;

/// <summary>
/// The <c>viscript-cli</c> executable (the NativeAOT build of <c>viscript cli</c>, issue 19.3) against a real daemon: the
/// same output and exit codes as <c>viscript cli</c>, several starts in one call, and a clear message naming the address
/// it tried when no daemon answers (issue 18.8).
/// </summary>
[Trait("Category", "E2E")]
public sealed class ViscriptCliExeTests : ExeTestBase
{
    private static async Task<CliResult> RunCliAsync(string runtimeDirectory, params string[] args)
    {
        var psi = new ProcessStartInfo(Paths.ViscriptCli)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        psi.Environment.Remove("VISCRIPT_CONTROL");
        psi.Environment.Remove("VISCRIPT_TOKEN");
        psi.Environment.Remove("VISCRIPT_TOKEN_FILE");
        psi.Environment["XDG_RUNTIME_DIR"] = runtimeDirectory;
        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException("viscript-cli " + string.Join(' ', args) + " did not finish");
        }
        return new CliResult(p.ExitCode, await stdout, await stderr);
    }

    [Fact]
    public async Task SameAnswersAsViscriptCli_AndSeveralStartsInOneCall()
    {
        await using var d = await DaemonProcess.StartAsync(WriteConfig(TestConfigs.App("t", "sleep")));
        var start = await RunCliAsync(d.RuntimeDirectory, "--control", d.ControlUrl, "s", "-n", "3", "t");
        Assert.True(start.ExitCode == 0, start.ToString());
        Assert.Equal(3, start.Lines.Length);
        Assert.All(start.Lines, l => Assert.StartsWith("Added external app (ID: ", l, StringComparison.Ordinal));
        // Every one of them (they register in any order).
        for (var id = 1; id <= 3; id++)
        {
            await d.WaitForLineAsync($"signal client {id} registered");
        }

        var la = await RunCliAsync(d.RuntimeDirectory, "--control", d.ControlUrl, "la");
        Assert.Equal(0, la.ExitCode);
        Assert.Equal(4, la.Lines.Length);
        var viaDaemonExe = await d.CliAsync("la");
        Assert.Equal(viaDaemonExe.Lines.Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[..5]), la.Lines.Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[..5]));

        var bad = await RunCliAsync(d.RuntimeDirectory, "--control", d.ControlUrl, "ping", "99");
        Assert.Equal(12, bad.ExitCode);
        Assert.StartsWith("error 12 (NoSuchProcess): ", bad.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NoDaemon_SaysWhichAddressItTried_AndNamesTheDaemonsThatRun()
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        var runtime = Directory.CreateDirectory(Path.Combine(Dir.Path, "run")).FullName;
        var none = await RunCliAsync(runtime, "--control", $"127.0.0.1:{port}", "la");
        Assert.Equal(50, none.ExitCode);
        Assert.Contains($"no viscript daemon answers at http://127.0.0.1:{port}/ (--control)", none.Stderr, StringComparison.Ordinal);

        // A daemon of this user runs elsewhere: its token file names it.
        await using var d = await DaemonProcess.StartAsync(WriteConfig(TestConfigs.App("t", "sleep")));
        var hinted = await RunCliAsync(d.RuntimeDirectory, "--control", $"127.0.0.1:{port}", "la");
        Assert.Equal(50, hinted.ExitCode);
        Assert.Contains($"daemons of this user that are running (token files): {d.ControlEndPoint}", hinted.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Hints_WithoutDaemons_TellHowToFindOne_OnlyForTheDefaultAddress()
    {
        var empty = Directory.CreateDirectory(Path.Combine(Dir.Path, "empty")).FullName;
        var tried = new Uri("http://127.0.0.1:7777/");
        Assert.Contains(CliClient.Hints(tried, "the default address", empty), l => l.Contains("--control ADDR", StringComparison.Ordinal));
        Assert.Empty(CliClient.Hints(tried, "--control", empty));
        File.WriteAllText(Path.Combine(empty, "control-127.0.0.1-7777.token"), "x");
        File.WriteAllText(Path.Combine(empty, "control-__1-4000.token"), "x");
        Assert.Equal("daemons of this user that are running (token files): [::1]:4000", CliClient.Hints(tried, "--control", empty)[0]);
    }
}
