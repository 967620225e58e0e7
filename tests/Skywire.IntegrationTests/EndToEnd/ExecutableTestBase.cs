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

    public void Dispose()
    {
        Directory.Delete(Dir, recursive: true);
        GC.SuppressFinalize(this);
    }
}
