using System.Runtime.InteropServices;

namespace Viscript.Core.Hosting;

/// <summary>
/// Finds the other executable of this repository at run time (skywire finds viscript for its demo; viscript finds
/// skywire for its topology view). The two are deployed side by side or built side by side; neither references the
/// other at compile time (docs/operations.md "How the demo finds viscript").
/// </summary>
public static class SiblingExecutable
{
    /// <summary>
    /// Finds <paramref name="name"/> (e.g. <c>viscript</c>): <paramref name="explicitPath"/>, else the environment
    /// variable <paramref name="environmentVariable"/>, else beside this executable (a shared publish folder), else the
    /// build output of <c>src/<paramref name="projectFolder"/></c> in the repository around this executable (same
    /// configuration and target framework), else <paramref name="name"/> on PATH.
    /// </summary>
    /// <param name="name">File name without extension.</param>
    /// <param name="projectFolder">Folder of its project under <c>src/</c>.</param>
    /// <param name="explicitPath">A path the user gave (a .dll or an executable); when set, the only candidate.</param>
    /// <param name="environmentVariable">Variable that may name the file.</param>
    /// <param name="tried">The places looked at, for an error message.</param>
    /// <returns>The file to run (a .dll runs through the dotnet host: <see cref="CommandFor"/>), or null.</returns>
    public static string? Locate(string name, string projectFolder, string? explicitPath, string? environmentVariable, out IReadOnlyList<string> tried)
    {
        var candidates = new List<string>();
        if (!string.IsNullOrEmpty(explicitPath))
        {
            candidates.Add(Path.GetFullPath(explicitPath));
            tried = candidates;
            return candidates.FirstOrDefault(File.Exists);
        }
        if (environmentVariable is not null && Environment.GetEnvironmentVariable(environmentVariable) is { Length: > 0 } fromEnv)
        {
            candidates.Add(Path.GetFullPath(fromEnv));
        }
        var baseDir = AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar);
        candidates.Add(Path.Combine(baseDir, name + ".dll"));
        // src/<Project>/bin/<Configuration>/<tfm> -> src/<projectFolder>/bin/<Configuration>/<tfm>
        var tfm = new DirectoryInfo(baseDir);
        if (tfm.Parent is { Parent.Parent.Parent: { } src } configuration && configuration.Parent!.Name == "bin")
        {
            candidates.Add(Path.Combine(src.FullName, projectFolder, "bin", configuration.Name, tfm.Name, name + ".dll"));
        }
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            candidates.Add(Path.Combine(dir, name));
        }
        tried = candidates;
        return candidates.FirstOrDefault(File.Exists);
    }

    /// <summary>The argv that runs <paramref name="file"/>: the dotnet host and the .dll, or the executable itself.</summary>
    public static IReadOnlyList<string> CommandFor(string file) =>
        file.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) ? [DotnetHost(), file] : [file];

    /// <summary>The dotnet host running this process (to run .dll files with), or <c>dotnet</c> from PATH.</summary>
    public static string DotnetHost()
    {
        if (Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            return self;
        }
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host))
        {
            return host;
        }
        // <root>/shared/Microsoft.NETCore.App/<version>/ -> <root>/dotnet
        var fromRuntime = Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", "..", "dotnet"));
        return File.Exists(fromRuntime) ? fromRuntime : "dotnet";
    }
}
