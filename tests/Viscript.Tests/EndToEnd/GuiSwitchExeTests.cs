using Viscript.Tests.Support;

namespace Viscript.Tests.EndToEnd;

/// <summary>Issue 18.3: <c>--gui</c> serves the GUI although config.yaml says <c>runHeadless: true</c> (as the shipped one does).</summary>
[Trait("Category", "E2E")]
public sealed class GuiSwitchExeTests : ExeTestBase
{
    private string HeadlessConfig() => Dir.Write("config.yaml", TestConfigs.Build([TestConfigs.App("t", "sleep")]));

    [Fact]
    public async Task Gui_OverridesRunHeadless_AndServesThePage()
    {
        await using var d = await DaemonProcess.StartAsync(HeadlessConfig(), "--gui");
        await d.WaitForLineAsync("viscript: GUI http://");
        using var http = new HttpClient();
        using var page = await http.GetAsync(new Uri(d.ControlUrl + "/"), TestContext.Current.CancellationToken);
        Assert.Equal(System.Net.HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Gui_AndHeadlessTogether_IsAUsageError()
    {
        var r = await DaemonProcess.RunAsync(["--gui", "--headless", "--config", HeadlessConfig(), "--signal", "127.0.0.1:0", "--control", "127.0.0.1:0", "--no-repl"]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--gui and --headless", r.Stderr, StringComparison.Ordinal);
    }
}
