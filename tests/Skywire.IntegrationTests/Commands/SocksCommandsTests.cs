using System.CommandLine;
using System.Reflection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Skywire.Apps.Socks;
using Skywire.Commands;

namespace Skywire.IntegrationTests.Commands;

public class SocksCommandsTests
{
    private static RootCommand Root()
    {
        var root = new RootCommand();
        foreach (var command in SocksCommands.Create(() => NullLoggerFactory.Instance))
        {
            root.Subcommands.Add(command);
        }

        return root;
    }

    private static IReadOnlyList<string> Errors(string line) => [.. Root().Parse(line).Errors.Select(e => e.Message)];

    [Fact]
    public void Create_GivesServerAndClient_WithIssueOptions()
    {
        var commands = SocksCommands.Create(() => NullLoggerFactory.Instance);
        Assert.Equal(["socks-server", "socks-client"], commands.Select(c => c.Name));
        var server = commands[0].Options.Select(o => o.Name).ToHashSet();
        Assert.Superset(new HashSet<string> { "--node-apps", "--token-file", "--name", "--allow", "--passcode" }, server);
        var client = commands[1].Options.Select(o => o.Name).ToHashSet();
        Assert.Superset(new HashSet<string> { "--node-apps", "--token-file", "--name", "--server", "--listen", "--user", "--password" }, client);
    }

    [Fact]
    public void ValidLines_ParseWithoutErrors()
    {
        Assert.Equal([], Errors($"socks-server --node-apps 127.0.0.1:7010 --token-file t --name exit --allow {new string('a', 66)} --allow {new string('b', 66)} --passcode x"));
        Assert.Empty(Errors($"socks-client --node-apps 127.0.0.1:7010 --token-file t --name c --server {new string('a', 66)}/exit --listen 127.0.0.1:1080 --user u --password p"));
        Assert.Empty(Errors("socks-client --node-apps 127.0.0.1:7010 --token-file t"));
    }

    [Theory]
    [InlineData("socks-server --token-file t", "--node-apps")]
    [InlineData("socks-server --node-apps 127.0.0.1:1 --token-file t --allow nothex", "node key")]
    [InlineData("socks-server --node-apps 127.0.0.1:1 --token-file t --connect-timeout 0", "--connect-timeout")]
    [InlineData("socks-client --node-apps 127.0.0.1:1 --token-file t --listen 0.0.0.0:1080", "non-loopback")]
    [InlineData("socks-client --node-apps 127.0.0.1:1 --token-file t --listen nowhere", "ip:port")]
    [InlineData("socks-client --node-apps 127.0.0.1:1 --token-file t --user u", "go together")]
    [InlineData("socks-client --node-apps 127.0.0.1:1 --token-file t --server justakey", "NODEKEY/APPNAME")]
    public void BadLines_ReportClearErrors(string line, string expected)
    {
        var errors = Errors(line);
        Assert.True(errors.Any(e => e.Contains(expected, StringComparison.Ordinal)), string.Join(" / ", errors));
    }

    /// <summary>
    /// Issue 12.4: a secret on the command line is visible to every local user (ps, /proc/PID/cmdline); the environment
    /// of a process only to its user. Before, --user needed --password on the command line.
    /// </summary>
    [Fact]
    public void Secrets_FromTheEnvironment_StandForTheirOptions()
    {
        const string line = "socks-client --node-apps 127.0.0.1:1 --token-file t --listen 0.0.0.0:1080 --user u";
        Assert.Contains(Errors(line), e => e.Contains("go together", StringComparison.Ordinal));
        try
        {
            Environment.SetEnvironmentVariable(SocksCommands.PasswordVariable, "hunter2");
            Environment.SetEnvironmentVariable(SocksCommands.PasscodeVariable, new string('x', 256));
            var errors = Errors(line);
            Assert.DoesNotContain(errors, e => e.Contains("go together", StringComparison.Ordinal));
            // The variable is read, not ignored: an invalid passcode from it is reported like one given as an option.
            Assert.Contains(errors, e => e.Contains("passcode", StringComparison.OrdinalIgnoreCase));
            Assert.Contains(Errors("socks-server --node-apps 127.0.0.1:1 --token-file t --name exit"), e => e.Contains("--passcode", StringComparison.Ordinal));
            Environment.SetEnvironmentVariable(SocksCommands.PasscodeVariable, "pc");
            Assert.Empty(Errors(line));
            Assert.Empty(Errors("socks-server --node-apps 127.0.0.1:1 --token-file t --name exit"));
        }
        finally
        {
            Environment.SetEnvironmentVariable(SocksCommands.PasswordVariable, null);
            Environment.SetEnvironmentVariable(SocksCommands.PasscodeVariable, null);
        }
    }

    [Fact]
    public void LogEventIds_AreUniqueAndInTheAppsRange()
    {
        var ids = typeof(SocksServer).Assembly.GetTypes()
            .Where(t => t.Namespace?.StartsWith("Skywire.Apps.Socks", StringComparison.Ordinal) == true)
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic))
            .Select(m => m.GetCustomAttribute<LoggerMessageAttribute>())
            .OfType<LoggerMessageAttribute>()
            .Select(a => a.EventId)
            .ToList();
        Assert.NotEmpty(ids);
        Assert.Equal(ids.Count, ids.Distinct().Count());
        Assert.All(ids, id => Assert.InRange(id, 6100, 6199));
    }

    [Fact]
    public void ParseTarget_SplitsOrRejects()
    {
        Assert.Equal(("02ab", "exit"), SocksApps.ParseTarget("02ab/exit"));
        Assert.Throws<FormatException>(() => SocksApps.ParseTarget("/exit"));
        Assert.Throws<FormatException>(() => SocksApps.ParseTarget("key/"));
        Assert.Throws<FormatException>(() => SocksApps.ParseTarget("a/b/c"));
    }

    [Fact]
    public void Options_ToString_HidesSecrets()
    {
        var client = SocksClientOptions.Default with { Username = "u", Password = "hunter2", Passcode = "pc-secret" };
        var server = SocksServerOptions.Default with { Passcode = "pc-secret" };
        Assert.DoesNotContain("hunter2", client.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("pc-secret", client.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("pc-secret", server.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("tok", new SocksAppBinding(new System.Net.IPEndPoint(0, 1), "tok", "n").ToString(), StringComparison.Ordinal);
    }
}
