using Viscript.Core.Config;

namespace Skywire.IntegrationTests.Demo;

/// <summary>The repository's config.yaml: loads with viscript's loader, lists every component, points at the built skywire.</summary>
public sealed class RootConfigTests
{
    private static readonly string Root = FindRoot();

    private static readonly string[] Components =
    [
        "meshnet-messenger", "meshnet-manager", "meshnet-node", "meshnet-socks-server", "meshnet-socks-client",
        "meshnet-vpn-server", "meshnet-vpn-client", "meshnet-nc", "meshnet-chat", "meshnet-node-chat", "meshnet-cli", "meshnet-keygen", "meshnet-demo",
    ];

    [Fact]
    public void RootConfig_Loads_WithoutWarnings()
    {
        var config = ConfigLoader.LoadFile(Path.Combine(Root, "config.yaml"));
        Assert.Empty(config.Warnings);
        Assert.True(config.Settings.RunHeadless);
        Assert.Contains("example-sleeper", config.Apps.Keys);
        Assert.Contains("example-echo", config.Apps.Keys);
    }

    [Fact]
    public void RootConfig_EveryComponent_HasHelpAndRunsTheBuiltSkywire()
    {
        var config = ConfigLoader.LoadFile(Path.Combine(Root, "config.yaml"));
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";
        foreach (var name in Components)
        {
            Assert.True(config.Apps.TryGetValue(name, out var app), $"{name} missing from config.yaml");
            Assert.False(string.IsNullOrWhiteSpace(app.Description), $"{name}: desc");
            Assert.Contains("Usage:", app.Help, StringComparison.Ordinal);
            Assert.Equal(ArgsMode.Extend, app.ArgsMode);
            Assert.NotEmpty(app.DefaultArgs);

            // The file names the Release apphost (README: dotnet build -c Release); this test run built the same
            // layout in its own configuration.
            Assert.Equal("src/Skywire/bin/Release/net10.0/skywire", app.Path.Replace(Root + "/", "", StringComparison.Ordinal));
            var built = Path.Combine(Root, "src", "Skywire", "bin", configuration, "net10.0", "skywire");
            Assert.True(File.Exists(built), $"{built} not built");
        }
    }

    [Fact]
    public void RootConfig_DefaultArgs_AreSkywireSubcommands()
    {
        var config = ConfigLoader.LoadFile(Path.Combine(Root, "config.yaml"));
        var root = new HashSet<string>(["messenger", "manager", "node", "app", "chat", "cli", "keygen", "demo"], StringComparer.Ordinal);
        foreach (var name in Components)
        {
            var args = config.Apps[name].DefaultArgs;
            Assert.Contains(args[0], root);
            if (args[0] == "app")
            {
                Assert.Contains(args[1], new[] { "socks-server", "socks-client", "vpn-server", "vpn-client", "nc", "chat" });
            }
        }
    }

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Skywire.slnx")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("repository root not found above " + AppContext.BaseDirectory);
    }
}
