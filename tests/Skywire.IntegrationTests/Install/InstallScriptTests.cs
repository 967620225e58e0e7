using System.Diagnostics;
using System.Text;

namespace Skywire.IntegrationTests.Install;

/// <summary>
/// Issue 18.9: deploy/install.sh publishes self-contained skywire and viscript into a prefix with the systemd units,
/// and what it installs runs: the programs start without the SDK's dotnet host, the units name the installed paths
/// and pass <c>systemd-analyze verify</c>, and the installed manager notifies readiness as its unit expects.
/// </summary>
[Trait("Category", "E2E")]
public sealed class InstallScriptTests : IDisposable
{
    private static readonly TimeSpan PublishLimit = TimeSpan.FromMinutes(20);
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);
    private readonly string _dir = Directory.CreateTempSubdirectory("skywire-install-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task InstallSh_PublishesSelfContainedProgramsAndUnits_ThatRun()
    {
        var repo = RepositoryRoot();
        var prefix = Path.Combine(_dir, "prefix");
        var units = Path.Combine(_dir, "etc-systemd");
        var install = await RunAsync(Path.Combine(repo, "deploy", "install.sh"), ["--prefix", prefix, "--systemd-dir", units, "--sysusers-dir", Path.Combine(_dir, "sysusers")], PublishLimit);
        Assert.True(install.Code == 0, install.Output);

        // The programs: self-contained apphosts behind bin/ symlinks, the same version as this build.
        var skywire = Path.Combine(prefix, "bin", "skywire");
        var viscript = Path.Combine(prefix, "bin", "viscript");
        var version = await RunAsync(skywire, ["--version"], Limit, noDotnet: true);
        Assert.Equal(0, version.Code);
        Assert.Equal(version.Output.Trim(), (await RunAsync(viscript, ["--version"], Limit, noDotnet: true)).Output.Trim());
        Assert.True(File.Exists(Path.Combine(prefix, "lib", "skywire", "libhostfxr.so")), "skywire is not self-contained");
        Assert.True(File.Exists(Path.Combine(prefix, "lib", "viscript", "wwwroot", "index.html")), "viscript's GUI files are missing");
        var cliHelp = await RunAsync(Path.Combine(prefix, "bin", "viscript-cli"), ["--help"], Limit, noDotnet: true);
        Assert.True(cliHelp.Code == 0 && cliHelp.Output.Contains("Usage: viscript cli", StringComparison.Ordinal), cliHelp.Output);

        // The units: the prefix filled in, copied to --systemd-dir, accepted by systemd.
        foreach (var name in new[] { "skywire-manager.service", "skywire-node.service", "skywire-messenger.service", "viscript.service" })
        {
            var text = await File.ReadAllTextAsync(Path.Combine(units, name), TestContext.Current.CancellationToken);
            Assert.DoesNotContain("@PREFIX@", text, StringComparison.Ordinal);
            Assert.Contains($"ExecStart={prefix}/bin/", text, StringComparison.Ordinal);
        }

        Assert.True(File.Exists(Path.Combine(_dir, "sysusers", "skywire.conf")));
        if (File.Exists("/usr/bin/systemd-analyze"))
        {
            var verify = await RunAsync("/usr/bin/systemd-analyze", ["verify", "--man=no", .. Directory.GetFiles(units, "*.service")], Limit);
            Assert.True(verify.Code == 0, verify.Output);
        }

        // The installed manager, started the way its unit starts it (NOTIFY_SOCKET, no dotnet on PATH), says READY=1.
        using var notify = new NotifySocket(_dir);
        var info = new ProcessStartInfo(skywire) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false, WorkingDirectory = _dir };
        foreach (var a in new[] { "manager", "--key", "manager.json", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0" })
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["NOTIFY_SOCKET"] = notify.Path;
        info.Environment["PATH"] = "/usr/bin:/bin";
        info.Environment.Remove("DOTNET_ROOT");
        using var manager = Process.Start(info)!;
        try
        {
            Assert.StartsWith("READY=1\nSTATUS=manager ", await notify.ReceiveAsync(Limit), StringComparison.Ordinal);
            ServiceReadinessTests.Terminate(manager.Id);
            Assert.Equal("STOPPING=1", await notify.ReceiveAsync(Limit));
            using var exit = new CancellationTokenSource(Limit);
            await manager.WaitForExitAsync(exit.Token);
            Assert.Equal(0, manager.ExitCode);
        }
        finally
        {
            if (!manager.HasExited)
            {
                manager.Kill();
                await manager.WaitForExitAsync();
            }
        }
    }

    private static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Skywire.slnx")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("repository root not found above " + AppContext.BaseDirectory);
    }

    private static async Task<(int Code, string Output)> RunAsync(string file, IEnumerable<string> args, TimeSpan limit, bool noDotnet = false)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        if (noDotnet)
        {
            info.Environment["PATH"] = "/usr/bin:/bin";
            info.Environment.Remove("DOTNET_ROOT");
        }

        using var process = Process.Start(info)!;
        var output = new StringBuilder();
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var cts = new CancellationTokenSource(limit);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new TimeoutException($"{file} did not finish within {limit}");
        }

        output.Append(await stdout).Append(await stderr);
        return (process.ExitCode, output.ToString());
    }
}
