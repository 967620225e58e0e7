using System.Globalization;
using System.Text.RegularExpressions;
using Viscript.Tests.Support;

namespace Viscript.Tests.EndToEnd;

/// <summary>Issue 18.6: <c>ru</c> of a fresh .NET signal client shows real heap figures, not zeros read before its first GC.</summary>
[Trait("Category", "E2E")]
public sealed partial class ResourceFiguresExeTests : ExeTestBase
{
    [GeneratedRegex(@"HeapSys:(\d+) HeapIdle:(\d+) HeapInuse:(\d+)")]
    private static partial Regex HeapFigures();

    [Fact]
    public async Task Ru_OfAFreshDotNetClient_HasNonZeroHeapFigures()
    {
        await using var d = await DaemonProcess.StartAsync(WriteConfig(TestConfigs.App("t", "sleep")));
        Assert.Equal(0, (await d.CliAsync("s", "t")).ExitCode);
        await d.WaitForLineAsync("signal client 1 registered");
        var ru = await d.CliAsync("ru", "1");
        Assert.True(ru.ExitCode == 0, ru.ToString());
        var m = HeapFigures().Match(ru.Stdout);
        Assert.True(m.Success, ru.Stdout);
        var (sys, idle, inuse) = (ulong.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), ulong.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture), ulong.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture));
        Assert.True(sys > 0 && inuse > 0 && idle > 0, ru.Stdout);
        Assert.Equal(sys, idle + inuse);
    }
}
