using System.Net;
using Viscript.Core.Cluster;
using Viscript.Core.Control;
using Viscript.Daemon;
using Viscript.Tests.Support;

namespace Viscript.Tests.Cluster;

/// <summary>
/// A primary and one agent named <c>b</c>, both in-process daemons on loopback (port 0), joined by key: the primary's
/// allow-list names the agent's key, the agent pins the primary's. Short keepalive and backoff so losses show quickly.
/// </summary>
public sealed class ClusterFixture : IAsyncDisposable
{
    public static readonly AgentChannelOptions FastChannel = new() { KeepaliveInterval = TimeSpan.FromSeconds(1), SilenceTimeout = TimeSpan.FromSeconds(6) };

    private ClusterFixture(InProcessDaemon primary, InProcessDaemon agent, TempDir keys)
    {
        Primary = primary;
        Agent = agent;
        Keys = keys;
    }

    public InProcessDaemon Primary { get; }

    public InProcessDaemon Agent { get; }

    /// <summary>Folder of the key files and the allow-list.</summary>
    public TempDir Keys { get; }

    public string AllowFile => Path.Combine(Keys.Path, "agents.allow");

    public string PrimaryKeyFile => Path.Combine(Keys.Path, "primary.key");

    public string AgentKeyFile => Path.Combine(Keys.Path, "agent.key");

    public string PrimaryKey => Primary.Host.ClusterKey!.PublicKey;

    public string AgentKey => Agent.Host.ClusterKey!.PublicKey;

    public static string Config() => TestConfigs.Build(TestConfigs.App("t", "sleep"), TestConfigs.App("echo", "echo"));

    /// <summary>Starts the cluster; <paramref name="joinVia"/> maps the primary's agent address to the one the agent dials (a relay).</summary>
    public static async Task<ClusterFixture> StartAsync(Func<IPEndPoint, IPEndPoint>? joinVia = null)
    {
        var keys = new TempDir();
        var agentKeyFile = Path.Combine(keys.Path, "agent.key");
        string agentKey;
        using (var k = ClusterKey.LoadOrCreate(agentKeyFile))
        {
            agentKey = k.PublicKey;
        }
        var allow = keys.Write("agents.allow", $"# test cluster\nb {agentKey}\n");
        var primary = await InProcessDaemon.StartAsync(Config(), configure: o => o with
        {
            Cluster = new ClusterOptions
            {
                Name = "main",
                KeyFile = Path.Combine(keys.Path, "primary.key"),
                AgentsListen = new IPEndPoint(IPAddress.Loopback, 0),
                AllowFile = allow,
                AllowListPollInterval = TimeSpan.FromMilliseconds(200),
                Channel = FastChannel,
            },
        });
        using var sub = primary.Host.Events.Subscribe();
        InProcessDaemon? agent = null;
        try
        {
            agent = await InProcessDaemon.StartAsync(Config(), configure: o => o with
            {
                Cluster = new ClusterOptions
                {
                    KeyFile = agentKeyFile,
                    Join = (joinVia?.Invoke(primary.Host.AgentsEndPoint!) ?? primary.Host.AgentsEndPoint!).ToString(),
                    PrimaryKey = primary.Host.ClusterKey!.PublicKey,
                    InitialBackoff = TimeSpan.FromMilliseconds(200),
                    MaxBackoff = TimeSpan.FromSeconds(1),
                    Channel = FastChannel,
                },
            });
            await InProcessDaemon.WaitAsync(sub, e => e is { Kind: "host", Host: "b", To: "connected" });
            return new ClusterFixture(primary, agent, keys);
        }
        catch
        {
            if (agent is not null)
            {
                await agent.DisposeAsync();
            }
            await primary.DisposeAsync();
            keys.Dispose();
            throw;
        }
    }

    /// <summary>An agent link of this cluster's agent host made anew (after the daemon's own was stopped), or with another key.</summary>
    public AgentLink NewLink(ClusterKey? key = null, string? primaryKey = null) => new(Agent.Host.Hosts.Local, new AgentLinkOptions
    {
        Primary = Primary.Host.AgentsEndPoint!.ToString(),
        PrimaryKey = primaryKey ?? PrimaryKey,
        Key = key ?? Agent.Host.ClusterKey!,
        InitialBackoff = TimeSpan.FromMilliseconds(200),
        MaxBackoff = TimeSpan.FromSeconds(1),
        Channel = FastChannel,
        LoggerFactory = Agent.Log,
    });

    /// <summary>Runs a command on the primary; the answer's lines or the problem.</summary>
    public Task<(HttpStatusCode Status, CommandResponse? Ok, ProblemBody? Problem)> CommandAsync(params string[] args) => Primary.CommandAsync(args);

    public async ValueTask DisposeAsync()
    {
        await Agent.DisposeAsync();
        await Primary.DisposeAsync();
        Keys.Dispose();
    }
}
