using System.Reflection;
using System.Xml.Linq;

namespace Architecture.Tests;

/// <summary>
/// The assembly graph of docs/architecture.md, enforced twice: what each project declares (ProjectReference in its
/// csproj) and what each built assembly really uses (its metadata references, which keep only assemblies whose types
/// it uses). A new arrow fails here until the drawing, this table and a reason change together.
/// </summary>
public class AssemblyGraphTests
{
    /// <summary>Our shipping assemblies (assembly name → project folder under src/).</summary>
    private static readonly Dictionary<string, string> s_projects = new(StringComparer.Ordinal)
    {
        ["Viscript.Signal"] = "Viscript.Signal",
        ["Viscript.Core"] = "Viscript.Core",
        ["viscript-cli"] = "Viscript.Cli",
        ["viscript"] = "Viscript",
        ["Skywire.Protocol"] = "Skywire.Protocol",
        ["Skywire.Core"] = "Skywire.Core",
        ["Skywire.Apps"] = "Skywire.Apps",
        ["skywire"] = "Skywire",
    };

    /// <summary>
    /// Allowed direct project references. Viscript (a general-purpose supervisor) knows nothing of Skywire; Skywire's
    /// libraries know nothing of Viscript; viscript-cli is the control-API client alone (NativeAOT; viscript compiles the
    /// same source for <c>viscript cli</c>); only the skywire executable opts in to the signal protocol and uses the
    /// viscript control-API client (for the demo). skywire → viscript is a deployment dependency only.
    /// </summary>
    private static readonly Dictionary<string, string[]> s_allowedProjectReferences = new(StringComparer.Ordinal)
    {
        ["Viscript.Signal"] = [],
        ["Viscript.Core"] = ["Viscript.Signal"],
        ["viscript-cli"] = ["Viscript.Core"],
        ["viscript"] = ["Viscript.Core"],
        ["Skywire.Protocol"] = [],
        ["Skywire.Core"] = ["Skywire.Protocol"],
        ["Skywire.Apps"] = ["Skywire.Core"],
        ["skywire"] = ["Skywire.Apps", "Viscript.Signal", "Viscript.Core"],
    };

    /// <summary>Assemblies of ours each assembly may use (the transitive closure of the table above).</summary>
    private static readonly Dictionary<string, string[]> s_allowedUses = new(StringComparer.Ordinal)
    {
        ["Viscript.Signal"] = [],
        ["Viscript.Core"] = ["Viscript.Signal"],
        ["viscript-cli"] = ["Viscript.Core", "Viscript.Signal"],
        ["viscript"] = ["Viscript.Core", "Viscript.Signal"],
        ["Skywire.Protocol"] = [],
        ["Skywire.Core"] = ["Skywire.Protocol"],
        ["Skywire.Apps"] = ["Skywire.Core", "Skywire.Protocol"],
        ["skywire"] = ["Skywire.Apps", "Skywire.Core", "Skywire.Protocol", "Viscript.Signal", "Viscript.Core"],
    };

    /// <summary>Assemblies that may use nothing but the .NET base class library (no packages).</summary>
    private static readonly string[] s_bclOnly = ["Viscript.Signal", "Skywire.Protocol"];

    /// <summary>
    /// Edges that break the drawing today and are being removed (issue 11). Each entry must still exist: when an edge
    /// goes, the test fails until it is deleted here too, so this list can only shrink.
    /// </summary>
    private static readonly (string From, string To)[] s_knownViolations =
    [
    ];

    public static TheoryData<string> Projects => [.. s_projects.Keys];

    [Theory]
    [MemberData(nameof(Projects))]
    public void ProjectReferences_AreOnlyTheAllowedOnes(string assembly)
    {
        var illegal = Illegal(assembly, DeclaredProjectReferences(assembly), s_allowedProjectReferences);
        Assert.True(illegal.Count == 0, $"{assembly} references {string.Join(", ", illegal)}: not in the assembly graph of docs/architecture.md");
    }

    [Theory]
    [MemberData(nameof(Projects))]
    public void BuiltAssembly_UsesOnlyTheAllowedAssembliesOfOurs(string assembly)
    {
        var illegal = Illegal(assembly, UsedAssembliesOfOurs(assembly), s_allowedUses);
        Assert.True(illegal.Count == 0, $"{assembly} uses types of {string.Join(", ", illegal)}: not in the assembly graph of docs/architecture.md");
    }

    [Theory]
    [MemberData(nameof(BclOnly))]
    public void BclOnlyAssembly_ReferencesOnlyTheFramework(string assembly)
    {
        var references = Assembly.Load(new AssemblyName(assembly)).GetReferencedAssemblies().Select(r => r.Name!).ToList();
        var outside = references.Where(name => !IsFramework(name)).ToList();
        Assert.True(outside.Count == 0, $"{assembly} must use the base class library only, but references {string.Join(", ", outside)}");
        Assert.Empty(PackageReferences(assembly));
    }

    public static TheoryData<string> BclOnly => [.. s_bclOnly];

    [Fact]
    public void KnownViolations_StillExist()
    {
        foreach (var (from, to) in s_knownViolations)
        {
            Assert.True(DeclaredProjectReferences(from).Contains(to) || UsedAssembliesOfOurs(from).Contains(to),
                $"{from} → {to} is gone: delete it from s_knownViolations");
        }
    }

    [Fact]
    public void Table_CoversEveryShippingProject()
    {
        var onDisk = Directory.GetFiles(Path.Combine(RepoRoot(), "src"), "*.csproj", SearchOption.AllDirectories)
            .Select(p => Path.GetFileName(Path.GetDirectoryName(p)!)).Order(StringComparer.Ordinal);
        Assert.Equal(s_projects.Values.Order(StringComparer.Ordinal), onDisk);
    }

    [Fact]
    public void Checker_FlagsAnIllegalReference()
    {
        // The checks above compare against the table; make sure a reference outside it is really reported, and that
        // the metadata reader sees real uses (Skywire.Apps cannot work without Skywire.Core's types).
        Assert.Equal(["Viscript.Signal"], Illegal("Skywire.Core", ["Skywire.Protocol", "Viscript.Signal"], s_allowedProjectReferences));
        Assert.Equal(["Skywire.Core"], Illegal("Viscript.Core", ["Viscript.Signal", "Skywire.Core"], s_allowedUses));
        Assert.Contains("Skywire.Core", UsedAssembliesOfOurs("Skywire.Apps"));
    }

    private static List<string> Illegal(string from, IEnumerable<string> references, Dictionary<string, string[]> allowed) =>
        [.. references.Except(allowed[from]).Where(to => !IsKnownViolation(from, to))];

    private static bool IsKnownViolation(string from, string to) => s_knownViolations.Contains((from, to));

    private static bool IsFramework(string name) =>
        name is "System" or "mscorlib" or "netstandard" || name.StartsWith("System.", StringComparison.Ordinal) ||
        name.StartsWith("Microsoft.Win32.", StringComparison.Ordinal);

    private static List<string> UsedAssembliesOfOurs(string assembly) =>
        [.. Assembly.Load(new AssemblyName(assembly)).GetReferencedAssemblies().Select(r => r.Name!).Where(s_projects.ContainsKey)];

    private static List<string> DeclaredProjectReferences(string assembly)
    {
        var csproj = Csproj(assembly);
        var byFolder = s_projects.ToDictionary(p => p.Value, p => p.Key, StringComparer.Ordinal);
        // A reference with ReferenceOutputAssembly="false" only orders the build (skywire builds viscript so that its demo
        // finds the executable): no assembly reference, nothing copied, so not an edge of the graph.
        return [.. csproj.Descendants("ProjectReference")
            .Where(e => !string.Equals(e.Attribute("ReferenceOutputAssembly")?.Value, "false", StringComparison.OrdinalIgnoreCase))
            .Select(e => Path.GetFileNameWithoutExtension(e.Attribute("Include")!.Value.Replace('\\', '/')))
            .Select(folder => byFolder.TryGetValue(folder, out var name) ? name : folder)];
    }

    private static List<string> PackageReferences(string assembly) =>
        [.. Csproj(assembly).Descendants("PackageReference").Select(e => e.Attribute("Include")!.Value)];

    private static XDocument Csproj(string assembly)
    {
        var folder = s_projects[assembly];
        return XDocument.Load(Path.Combine(RepoRoot(), "src", folder, folder + ".csproj"));
    }

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Skywire.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Skywire.slnx not found above " + AppContext.BaseDirectory);
    }
}
