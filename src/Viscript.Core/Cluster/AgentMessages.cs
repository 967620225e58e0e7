using System.Text.Json;
using System.Text.Json.Serialization;
using Viscript.Core.Control;

namespace Viscript.Core.Cluster;

// Bodies of the agent protocol (JSON, camelCase). Add fields, never rename; the protocol number changes only for a
// change an older peer cannot ignore.

/// <summary>First frame of an agent.</summary>
/// <param name="Protocol">Agent protocol version (<see cref="AgentProtocol.Version"/>).</param>
/// <param name="Version">viscript version.</param>
/// <param name="HostName">The agent machine's host name (informational; the primary names the agent from its allow-list).</param>
/// <param name="Pid">The agent daemon's pid.</param>
public sealed record AgentHello(int Protocol, string Version, string HostName, int Pid);

/// <summary>The primary accepted the agent.</summary>
/// <param name="Protocol">Protocol version the primary speaks.</param>
/// <param name="Name">The agent's name in the cluster (from the allow-list).</param>
/// <param name="Primary">The primary's own host name.</param>
public sealed record AgentWelcome(int Protocol, string Name, string Primary);

/// <summary>The primary refused the agent (then closes).</summary>
/// <param name="Reason">Why, for the agent's log.</param>
public sealed record AgentRefusal(string Reason);

/// <summary>A request of the primary. Which fields count depends on <see cref="Method"/> (<see cref="AgentMethods"/>).</summary>
/// <param name="Id">Request id (the reply carries it).</param>
/// <param name="Method">What to do.</param>
/// <param name="Target">Process id on the agent.</param>
/// <param name="App">App name (start).</param>
/// <param name="Args">Arguments (start).</param>
/// <param name="Count">Lines (logs, follow).</param>
/// <param name="Line">Input line (stdin).</param>
/// <param name="Stream">Stream id (follow, unfollow).</param>
public sealed record AgentRequest(long Id, string Method, ulong Target = 0, string? App = null, IReadOnlyList<string>? Args = null, int Count = 0, string? Line = null, long Stream = 0);

/// <summary>The agent's answer to a request.</summary>
/// <param name="Id">The request's id.</param>
/// <param name="Code">0, or the <see cref="ErrorCode"/> the agent's command failed with.</param>
/// <param name="Message">The error message.</param>
/// <param name="Result">The result (shape by method), when it succeeded.</param>
public sealed record AgentReply(long Id, int Code, string? Message, JsonElement? Result);

/// <summary>Rows of the agent's process table.</summary>
/// <param name="Full">A complete snapshot (replaces what the primary held), else only changed rows.</param>
/// <param name="Processes">Rows (as the agent's <c>GET /api/processes</c> shows them).</param>
/// <param name="Removed">Ids that are gone.</param>
/// <param name="Last">The last piece of a snapshot sent in several frames.</param>
public sealed record ProcessUpdate(bool Full, IReadOnlyList<ProcessInfo> Processes, IReadOnlyList<ulong> Removed, bool Last = true);

/// <summary>An item of a followed log.</summary>
/// <param name="Stream">The follow request's stream id.</param>
/// <param name="Kind"><c>line</c>, <c>partial</c>, <c>end</c>, or <c>error</c> (then <see cref="Code"/> and <see cref="Message"/>).</param>
/// <param name="Line">The line.</param>
/// <param name="End">Final state (end).</param>
/// <param name="Code">Error code (error).</param>
/// <param name="Message">Error message (error).</param>
public sealed record StreamItem(long Stream, string Kind, LogLineInfo? Line = null, LogEndInfo? End = null, int Code = 0, string? Message = null);

/// <summary>The apps of the agent's config.yaml.</summary>
/// <param name="Apps">Apps, sorted by name.</param>
public sealed record AgentApps(IReadOnlyList<AppInfo> Apps);

/// <summary>Request methods.</summary>
public static class AgentMethods
{
#pragma warning disable CS1591 // the names are the docs
    public const string Start = "start";
    public const string Get = "get";
    public const string Ping = "ping";
    public const string ResourceUsage = "ru";
    public const string Stop = "sd";
    public const string Kill = "kill";
    public const string Restart = "restart";
    public const string Logs = "logs";
    public const string Input = "stdin";
    public const string Attachable = "attachable";
    public const string Samples = "samples";
    public const string Follow = "follow";
    public const string Unfollow = "unfollow";
#pragma warning restore CS1591
}

/// <summary>Protocol constants.</summary>
public static class AgentProtocol
{
    /// <summary>Version spoken by this build.</summary>
    public const int Version = 1;

    /// <summary>Largest hello (before the agent is known).</summary>
    public const int MaxHelloSize = 16 * 1024;
}

/// <summary>Source-generated JSON of the agent protocol.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(AgentHello))]
[JsonSerializable(typeof(AgentWelcome))]
[JsonSerializable(typeof(AgentRefusal))]
[JsonSerializable(typeof(AgentRequest))]
[JsonSerializable(typeof(AgentReply))]
[JsonSerializable(typeof(ProcessUpdate))]
[JsonSerializable(typeof(HostStats))]
[JsonSerializable(typeof(StreamItem))]
[JsonSerializable(typeof(AgentApps))]
[JsonSerializable(typeof(ProcessEvent))]
[JsonSerializable(typeof(ProcessInfo))]
[JsonSerializable(typeof(ResourceReport))]
[JsonSerializable(typeof(StopReport))]
[JsonSerializable(typeof(PingReport))]
[JsonSerializable(typeof(List<LogLineInfo>))]
[JsonSerializable(typeof(List<SampleSeries>))]
public sealed partial class AgentJsonContext : JsonSerializerContext;
