using System.Text;
using Skywire.IntegrationTests.EndToEnd;

namespace Skywire.IntegrationTests.Demo;

/// <summary>
/// `skywire demo --check` through the built executable: viscript headless, messenger, manager, a chain of 4 nodes,
/// the SOCKS pair and a chat listener as viscript apps; a page fetched through the proxy across 3 hops; then
/// everything stopped. The demo folder is unique per test, and every child's command line names it, so
/// "nothing left running" is "no process whose command line mentions the folder".
/// </summary>
public sealed class DemoCheckTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "skywire-demo-test-" + Guid.NewGuid().ToString("n")[..12]);

    [Fact]
    public async Task DemoCheck_FullBringUp_PassesAndLeavesNothingRunning()
    {
        await using var demo = SkywireProcess.Start(null, ["demo", "--check", "--dir", _dir, "--step-timeout", "150"]);
        var code = await demo.WaitForExitAsync(TimeSpan.FromMinutes(12));
        var stdout = demo.StdoutText;
        Assert.True(code == 0, $"exit {code}\nstdout:\n{stdout}\nstderr:\n{demo.Stderr}\n{Logs()}");

        // Every step reported, the route crossed the whole chain, the bytes matched, viscript stopped its apps.
        Assert.Equal(11, stdout.Split('\n').Count(l => l.Contains(" ... ok (", StringComparison.Ordinal)));
        Assert.Contains("3 hops: A > B > C > D", stdout, StringComparison.Ordinal);
        Assert.Contains("byte-exact", stdout, StringComparison.Ordinal);
        Assert.Contains("viscript stopped its 9 apps and exited (0)", stdout, StringComparison.Ordinal);
        Assert.Contains("check passed", stdout, StringComparison.Ordinal);

        // Nine viscript apps plus viscript itself were started with the folder on their command line.
        Assert.Empty(ProcessesMentioning(_dir));

        // With an explicit --dir the keys and logs stay: one log per app, each ending with viscript's exit marker.
        var logs = Directory.GetFiles(Path.Combine(_dir, "logs"), "meshnet-*.log");
        Assert.Equal(9, logs.Length);
        Assert.All(logs, f => Assert.Contains("--- viscript: pid", File.ReadAllLines(f)[^1], StringComparison.Ordinal));
    }

    [Fact]
    public async Task Demo_Interactive_OffersTheGuiWithTheDemoMeshTopology()
    {
        // Issue 18.3: the demo (not --check) runs viscript with its GUI, and the GUI's topology view already shows the
        // demo's mesh (through `skywire demo topology`, which waits for the manager the demo starts after viscript).
        await using var demo = SkywireProcess.Start(null, ["demo", "--dir", _dir, "--step-timeout", "150"]);
        await demo.WaitForStdoutLineAsync("Press Ctrl+C to stop everything.", TimeSpan.FromMinutes(12));
        var guiLine = await demo.WaitForStdoutLineAsync("GUI: ", TimeSpan.FromSeconds(1));
        // Output redirected (not a terminal): the page's address and the command that prints the sign-in link, no token.
        var match = System.Text.RegularExpressions.Regex.Match(guiLine, @"^GUI: (?<url>http://127\.0\.0\.1:(?<port>\d+)/) .*sign-in link: .* --control 127\.0\.0\.1:\k<port> --gui-url$");
        Assert.True(match.Success, guiLine);
        var baseUrl = new Uri(match.Groups["url"].Value);
        var token = Viscript.Core.Control.ControlToken.Read(Viscript.Core.Control.ControlToken.DefaultPath(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, baseUrl.Port)));
        Assert.DoesNotContain(token, demo.StdoutText, StringComparison.Ordinal);

        using var http = new HttpClient { BaseAddress = baseUrl, Timeout = TimeSpan.FromSeconds(30) };
        var page = await http.GetAsync(new Uri("/", UriKind.Relative));
        Assert.Equal(System.Net.HttpStatusCode.OK, page.StatusCode);
        Assert.Contains("<html", await page.Content.ReadAsStringAsync(), StringComparison.OrdinalIgnoreCase);

        // The topology view: four nodes online, the three links of the chain, and the SOCKS route across them (the demo fetched through it).
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        string topology;
        while (true)
        {
            topology = await http.GetStringAsync(new Uri("/api/topology", UriKind.Relative));
            using var doc = System.Text.Json.JsonDocument.Parse(topology);
            var root = doc.RootElement;
            // Links are listed per direction: the chain is three node pairs.
            var pairs = root.GetProperty("links").EnumerateArray()
                .Select(l => string.Join('|', new[] { l.GetProperty("from").GetString(), l.GetProperty("to").GetString() }.Order(StringComparer.Ordinal))).Distinct().Count();
            if (root.GetProperty("nodes").GetArrayLength() == 4 && pairs == 3 && root.GetProperty("routes").GetArrayLength() >= 1)
            {
                Assert.True(root.GetProperty("error").ValueKind == System.Text.Json.JsonValueKind.Null, topology);
                Assert.All(root.GetProperty("nodes").EnumerateArray(), n => Assert.True(n.GetProperty("online").GetBoolean(), topology));
                Assert.EndsWith(demo.StdoutText.Split('\n').First(l => l.StartsWith("[ 4/", StringComparison.Ordinal)).Split(", ")[^1].Trim(),
                    root.GetProperty("manager").GetString(), StringComparison.Ordinal);
                break;
            }
            Assert.True(DateTime.UtcNow < deadline, "the GUI's topology never showed the demo mesh: " + topology);
            await Task.Delay(250);
        }

        // Ctrl+C (SIGTERM here: a background process may have SIGINT ignored): everything stops, the topology command too.
        using (var kill = System.Diagnostics.Process.Start("kill", ["-TERM", demo.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync();
        }
        Assert.Equal(0, await demo.WaitForExitAsync(TimeSpan.FromMinutes(3)));
        // (The whole output in the message: xunit's Contains shows only its start, and the end says how the stop went.)
        Assert.True(demo.StdoutText.Contains("viscript stopped its 9 apps and exited (0)", StringComparison.Ordinal), "the demo's output:\n" + demo.StdoutText + "\n" + demo.Stderr);
        Assert.Empty(ProcessesMentioning(_dir));
    }

    [Fact]
    public async Task DemoCheck_ViscriptMissing_FailsWithStepAndLogLocation()
    {
        await using var demo = SkywireProcess.Start(null, ["demo", "--check", "--dir", _dir, "--viscript", Path.Combine(_dir, "no-such-viscript.dll")]);
        var code = await demo.WaitForExitAsync(TimeSpan.FromMinutes(2));
        Assert.Equal(1, code);
        Assert.Contains("step 'prepare keys and viscript config' failed: viscript not found", demo.Stderr, StringComparison.Ordinal);
        Assert.Contains($"logs: {Path.Combine(_dir, "logs")}", demo.Stderr, StringComparison.Ordinal);
        Assert.Contains("check FAILED", demo.StdoutText, StringComparison.Ordinal);
        Assert.Empty(ProcessesMentioning(_dir));
    }

    [Fact]
    public void SkywireOutput_HoldsNoCopyOfViscript_TheDemoFindsItsOwnBuild()
    {
        // Issue 11.1: skywire -> viscript is a deployment dependency only; a viscript apphost beside skywire served no page.
        var testBin = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var (configuration, tfm) = (testBin.Parent!.Name, testBin.Name);
        var root = testBin;
        while (!File.Exists(Path.Combine(root.FullName, "Skywire.slnx")))
        {
            root = root.Parent!;
        }
        var skywireDir = Path.Combine(root.FullName, "src", "Skywire", "bin", configuration, tfm);
        Assert.True(File.Exists(Path.Combine(skywireDir, "skywire.dll")), skywireDir);
        foreach (var dir in new[] { skywireDir, AppContext.BaseDirectory })
        {
            foreach (var name in new[] { "viscript", "viscript.dll", "viscript.runtimeconfig.json", "wwwroot" })
            {
                Assert.False(Path.Exists(Path.Combine(dir, name)), $"{name} in {dir}");
            }
        }
        Assert.DoesNotContain(typeof(Skywire.Demo.DemoRunner).Assembly.GetReferencedAssemblies(), a => a.Name == "viscript");
        // Where the demo finds it instead (its own build output, GUI files included).
        var viscript = Path.Combine(root.FullName, "src", "Viscript", "bin", configuration, tfm, "viscript.dll");
        Assert.True(File.Exists(viscript), viscript);
        Assert.True(File.Exists(Path.Combine(Path.GetDirectoryName(viscript)!, "wwwroot", "index.html")), "the viscript the demo runs has its GUI files");
    }

    [Theory]
    [InlineData("--nodes", "2", "--nodes must be 3 to 26")]
    [InlineData("--socks-port", "70000", "--socks-port must be 0 to 65535")]
    public async Task Demo_BadOption_ExitsWithUsageError(string option, string value, string message)
    {
        await using var demo = SkywireProcess.Start(null, ["demo", "--check", "--dir", _dir, option, value]);
        var code = await demo.WaitForExitAsync(TimeSpan.FromMinutes(2));
        Assert.NotEqual(0, code);
        Assert.Contains(message, demo.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(_dir), "nothing is created before the options are valid");
    }

    private static List<string> ProcessesMentioning(string text)
    {
        var found = new List<string>();
        foreach (var proc in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(proc), out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }

            try
            {
                var cmdline = File.ReadAllText(Path.Combine(proc, "cmdline")).Replace('\0', ' ');
                if (cmdline.Contains(text, StringComparison.Ordinal))
                {
                    found.Add($"{pid}: {cmdline}");
                }
            }
            catch (IOException)
            {
                // Exited while we looked.
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        return found;
    }

    private string Logs()
    {
        var text = new StringBuilder();
        var logs = Path.Combine(_dir, "logs");
        if (Directory.Exists(logs))
        {
            foreach (var file in Directory.GetFiles(logs).Order(StringComparer.Ordinal))
            {
                text.Append("== ").AppendLine(Path.GetFileName(file));
                foreach (var line in File.ReadLines(file).TakeLast(15))
                {
                    text.AppendLine(line);
                }
            }
        }

        return text.ToString();
    }

    public void Dispose()
    {
        try
        {
            if (Directory.Exists(_dir))
            {
                Directory.Delete(_dir, recursive: true);
            }
        }
        catch (IOException)
        {
        }
    }
}
