using System.Text.RegularExpressions;

namespace Skywire.IntegrationTests.EndToEnd;

/// <summary>
/// What the tests through the built `skywire` executables share: a scratch folder for keys and token files
/// (removed afterwards) and the start-up lines of the manager and the nodes.
/// </summary>
public abstract partial class ExecutableTestBase(string scratchPrefix) : IDisposable
{
    /// <summary>The scratch folder of this test.</summary>
    protected string Dir { get; } = Directory.CreateTempSubdirectory(scratchPrefix).FullName;

    /// <summary>A path inside the scratch folder.</summary>
    protected string FilePath(string name) => Path.Combine(Dir, name);

    /// <summary>A node's start-up line: its key and the app API port.</summary>
    [GeneratedRegex(@"node ([0-9a-f]{66}) links \S+ apps 127\.0\.0\.1:(\d+)")]
    protected static partial Regex NodeLine();

    /// <summary>The manager's start-up line: its port.</summary>
    [GeneratedRegex(@"listening on [0-9.]+:(\d+)")]
    protected static partial Regex ManagerLine();

    /// <summary>
    /// Runs `skywire cli ... link A B` until it succeeds: a node prints its app address before the manager has its
    /// registration, so under load the first `cli link` can meet an unknown node; it is asked again until
    /// <paramref name="limit"/>, as a person would.
    /// </summary>
    protected static async Task LinkAsync(string[] cli, TimeSpan limit)
    {
        var deadline = DateTime.UtcNow + limit;
        while (true)
        {
            await using var link = SkywireProcess.Start(null, cli);
            if (await link.WaitForExitAsync(limit) == 0)
            {
                return;
            }

            Assert.True(DateTime.UtcNow < deadline, $"`{string.Join(' ', cli.SkipWhile(a => a != "link"))}` kept failing:\n{link.Stderr}");
            await Task.Delay(250);
        }
    }

    /// <summary>Runs `skywire cli ... links` until at least <paramref name="ends"/> link ends show as up.</summary>
    protected static async Task WaitForLinksUpAsync(string[] cli, int ends, TimeSpan limit)
    {
        var deadline = DateTime.UtcNow + limit;
        while (true)
        {
            await using var links = SkywireProcess.Start(null, cli);
            Assert.Equal(0, await links.WaitForExitAsync(limit));
            if (links.StdoutText.Split('\n').Count(l => l.Contains(" up ", StringComparison.Ordinal)) >= ends)
            {
                return;
            }

            Assert.True(DateTime.UtcNow < deadline, "links not up:\n" + links.StdoutText);
            await Task.Delay(200);
        }
    }

    public void Dispose()
    {
        Directory.Delete(Dir, recursive: true);
        GC.SuppressFinalize(this);
    }
}
