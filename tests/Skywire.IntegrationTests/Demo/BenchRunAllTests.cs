using System.Diagnostics;

namespace Skywire.IntegrationTests.Demo;

/// <summary>bench/run-all against a folder of stand-in scripts: RESULT parsing, ratios, failures, the generated doc section.</summary>
public sealed class BenchRunAllTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("run-all-test-").FullName;

    [Fact]
    public async Task RunAll_ParsesResults_ListsFailures_AndReplacesItsSectionOnly()
    {
        var bench = Directory.CreateDirectory(Path.Combine(_dir, "bench")).FullName;
        Directory.CreateDirectory(Path.Combine(bench, "area"));
        await File.WriteAllTextAsync(Path.Combine(bench, "good.sh"),
            "echo '| table | for people |'\n"
            + "echo 'RESULT name=x-throughput ours=300 baseline=100 unit=MB/s better=higher'\n"
            + "echo 'RESULT better=lower unit=us baseline=50 ours=25 name=x-latency'\n"
            + "echo 'RESULT name=broken ours=fast baseline=1'\n");
        await File.WriteAllTextAsync(Path.Combine(bench, "crash.sh"), "echo 'missing microsocks' >&2\nexit 3\n");
        await File.WriteAllTextAsync(Path.Combine(bench, "silent.sh"), "echo 'no results here'\n");
        await File.WriteAllTextAsync(Path.Combine(bench, "area", "pybench.py"), "print('RESULT name=py-x ours=1.5 baseline=3 unit=s better=lower')\n");
        await File.WriteAllTextAsync(Path.Combine(bench, "area", "helper.py"), "raise SystemExit('a helper is not a benchmark')\n");
        var doc = Path.Combine(_dir, "benchmarks.md");
        await File.WriteAllTextAsync(doc, "# Benchmarks\n\n## Signal\n\nhand-written figures\n");

        var (code, _, stderr) = await RunAsync("--no-build", "--bench-dir", bench, "--doc", doc);
        Assert.Equal(1, code); // two scripts failed
        Assert.Contains("malformed line ignored: RESULT name=broken", stderr, StringComparison.Ordinal);

        var text = await File.ReadAllTextAsync(doc);
        Assert.StartsWith("# Benchmarks\n\n## Signal\n\nhand-written figures\n", text, StringComparison.Ordinal);
        Assert.Contains("| x-throughput | bench/good.sh | 300 | 100 | MB/s | 3.00 | higher |", text, StringComparison.Ordinal);
        Assert.Contains("| x-latency | bench/good.sh | 25 | 50 | us | 0.50 | lower |", text, StringComparison.Ordinal);
        Assert.Contains("| py-x | bench/area/pybench.py | 1.5 | 3 | s | 0.50 | lower |", text, StringComparison.Ordinal);
        Assert.Contains("`bench/crash.sh`: failed", text, StringComparison.Ordinal);
        Assert.Contains("exit 3: missing microsocks", text, StringComparison.Ordinal);
        Assert.Contains("`bench/silent.sh`: failed", text, StringComparison.Ordinal);
        Assert.DoesNotContain("helper.py", text, StringComparison.Ordinal);
        Assert.DoesNotContain("broken", text, StringComparison.Ordinal);
        Assert.Contains("Machine: ", text, StringComparison.Ordinal);

        // A second run replaces the generated section instead of adding another.
        (code, _, _) = await RunAsync("--no-build", "--bench-dir", bench, "--doc", doc, "--only", "good");
        Assert.Equal(0, code);
        text = await File.ReadAllTextAsync(doc);
        Assert.Equal(1, CountOf(text, "<!-- run-all:begin"));
        Assert.DoesNotContain("py-x", text, StringComparison.Ordinal);
        Assert.Contains("hand-written figures", text, StringComparison.Ordinal);
    }

    private static int CountOf(string text, string what) => text.Split(what).Length - 1;

    private static async Task<(int Code, string Stdout, string Stderr)> RunAsync(params string[] args)
    {
        var root = new DirectoryInfo(AppContext.BaseDirectory);
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "Skywire.slnx")))
        {
            root = root.Parent;
        }

        var info = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.Environment["TMPDIR"] = Path.GetDirectoryName(args[Array.IndexOf(args, "--doc") + 1]); // its log folder goes there too
        info.ArgumentList.Add(Path.Combine(root!.FullName, "bench", "run-all"));
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(cts.Token);
        return (process.ExitCode, await stdout, await stderr);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
