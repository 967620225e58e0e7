using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Viscript.Core.Control;

namespace Viscript.Core.Cluster;

/// <summary>
/// The namespace of a viscript console (docs/viscript.md "Cluster"): this daemon's own host and, on a primary, one
/// <see cref="RemoteHost"/> per line of the agent allow-list. Resolves <c>HOST:ID</c> and <c>HOST:APP</c>; a bare id or
/// app name means this host, so every command of a single daemon works unchanged.
/// </summary>
public sealed class ClusterDirectory
{
    private readonly Lock _gate = new();
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    /// <summary>The clock (host ages in <c>hosts</c>).</summary>
    public TimeProvider Time => _time;

    private Dictionary<string, RemoteHost> _remotes = new(StringComparer.Ordinal);

    /// <summary>Creates the directory of <paramref name="local"/>; <paramref name="isPrimary"/> when this daemon accepts agents.</summary>
    public ClusterDirectory(LocalProcessHost local, bool isPrimary = false, TimeProvider? time = null, ILogger? logger = null)
    {
        Local = local;
        IsPrimary = isPrimary;
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>This daemon's host.</summary>
    public LocalProcessHost Local { get; }

    /// <summary>This daemon's viscript version (for <c>hosts</c>).</summary>
    public string? LocalVersion { get; init; }

    /// <summary>This daemon's cluster key (for <c>hosts</c>), if it has one.</summary>
    public string? LocalPublicKey { get; init; }

    /// <summary>Whether this daemon accepts agents: then <c>la</c> has a HOST column and rows carry their host.</summary>
    public bool IsPrimary { get; }

    /// <summary>Remote events (with <see cref="ProcessEvent.Host"/>) and host state changes (kind <c>host</c>).</summary>
    public event EventHandler<ProcessEvent>? Changed;

    /// <summary>The agents, by name.</summary>
    public IReadOnlyList<RemoteHost> Remotes
    {
        get
        {
            lock (_gate)
            {
                return [.. _remotes.Values.OrderBy(r => r.Name, StringComparer.Ordinal)];
            }
        }
    }

    /// <summary>The agent a key belongs to, or null.</summary>
    public RemoteHost? FindByKey(string publicKey)
    {
        lock (_gate)
        {
            return _remotes.Values.FirstOrDefault(r => r.Matches(publicKey));
        }
    }

    /// <summary>
    /// Makes the agents those of <paramref name="list"/>: new lines become hosts (never seen), hosts whose line went
    /// (or whose key changed) are disconnected and dropped.
    /// </summary>
    public void Apply(AllowList list)
    {
        List<RemoteHost> dropped = [];
        lock (_gate)
        {
            var next = new Dictionary<string, RemoteHost>(StringComparer.Ordinal);
            foreach (var agent in list.Agents)
            {
                if (string.Equals(agent.Name, Local.Name, StringComparison.Ordinal))
                {
                    // A line naming this host itself cannot be addressed; the file validator does not know our name.
                    continue;
                }
                next[agent.Name] = _remotes.TryGetValue(agent.Name, out var existing) && existing.Matches(agent.PublicKey)
                    ? existing
                    : new RemoteHost(agent.Name, agent.PublicKey, _time, _logger, e => Changed?.Invoke(this, e));
            }
            dropped.AddRange(_remotes.Values.Where(r => !next.TryGetValue(r.Name, out var kept) || !ReferenceEquals(kept, r)));
            _remotes = next;
        }
        foreach (var r in dropped)
        {
            r.Disconnect("the agent's key is no longer on the allow-list");
        }
    }

    /// <summary>The host named <paramref name="name"/> (null, empty or this host's name: this host).</summary>
    /// <exception cref="ViscriptException">UnknownHost.</exception>
    public IProcessHost Resolve(string? name)
    {
        if (string.IsNullOrEmpty(name) || string.Equals(name, Local.Name, StringComparison.Ordinal))
        {
            return Local;
        }
        lock (_gate)
        {
            if (_remotes.TryGetValue(name, out var r))
            {
                return r;
            }
        }
        throw new ViscriptException(ErrorCode.UnknownHost, IsPrimary
            ? $"No host named '{name}' (see 'hosts'; agents are named in the allow-list)."
            : $"No host named '{name}': this viscript has no agents (only the primary of a cluster has).");
    }

    /// <summary>Whether <paramref name="name"/> names a host (this one or an agent).</summary>
    public bool IsHost(string name)
    {
        if (string.Equals(name, Local.Name, StringComparison.Ordinal))
        {
            return true;
        }
        lock (_gate)
        {
            return _remotes.ContainsKey(name);
        }
    }

    /// <summary>
    /// Parses the id argument of <paramref name="command"/>: <c>ID</c> (this host) or <c>HOST:ID</c>. The original's
    /// messages for a missing or extra argument.
    /// </summary>
    /// <exception cref="ViscriptException">Usage, BadId, UnknownHost.</exception>
    public (IProcessHost Host, ulong Id) ParseTarget(IReadOnlyList<string> args, string command)
    {
        if (args.Count == 0)
        {
            throw new ViscriptException(ErrorCode.Usage, $"No id passed! e.g. {command} 1");
        }
        if (args.Count > 1)
        {
            throw new ViscriptException(ErrorCode.Usage, $"Too many arguments: {command} takes one id, e.g. {command} 1");
        }
        return ParseTarget(args[0], command);
    }

    /// <summary>Parses one <c>ID</c> or <c>HOST:ID</c>.</summary>
    public (IProcessHost Host, ulong Id) ParseTarget(string text, string command)
    {
        var colon = text.IndexOf(':', StringComparison.Ordinal);
        var host = colon < 0 ? Local : Resolve(text[..colon]);
        return (host, ParseId(colon < 0 ? text : text[(colon + 1)..], text));
    }

    /// <summary>Parses <c>APP</c> or <c>HOST:APP</c> (a prefix that names no host is part of a local app's name).</summary>
    public (IProcessHost Host, string App) ParseApp(string text)
    {
        var colon = text.IndexOf(':', StringComparison.Ordinal);
        if (colon > 0 && colon < text.Length - 1)
        {
            var prefix = text[..colon];
            if (IsHost(prefix))
            {
                return (Resolve(prefix), text[(colon + 1)..]);
            }
            if (!Local.Supervisor.Config.Apps.ContainsKey(text))
            {
                Resolve(prefix); // throws UnknownHost
            }
        }
        return (Local, text);
    }

    /// <summary>The id as the namespace writes it: <c>ID</c> on this host, <c>HOST:ID</c> on an agent.</summary>
    public static string Qualify(IProcessHost host, ulong id) => host.IsLocal ? id.ToString(CultureInfo.InvariantCulture) : $"{host.Name}:{id}";

    private static ulong ParseId(string text, string whole)
    {
        if (!ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var id) || id == 0)
        {
            throw new ViscriptException(ErrorCode.BadId, $"Id must be a positive integer, got '{whole}'.");
        }
        return id;
    }

    /// <summary>Every process of every host: this host's first; rows carry their host on a primary.</summary>
    public IReadOnlyList<ProcessInfo> ListAll()
    {
        var local = Local.List();
        if (!IsPrimary)
        {
            return local;
        }
        var all = local.Select(p => p with { Host = Local.Name }).ToList();
        foreach (var r in Remotes)
        {
            all.AddRange(r.List().Select(p => p with { Host = r.Name }));
        }
        return all;
    }

    /// <summary>This host, then every agent.</summary>
    public IReadOnlyList<HostInfo> Hosts()
    {
        var list = new List<HostInfo> { new(Local.Name, "local", true, _time.GetUtcNow(), null, LocalVersion, null, LocalPublicKey, Environment.MachineName, HostStatsReader.Read(Local.List()), null) };
        list.AddRange(Remotes.Select(r => r.Describe()));
        return list;
    }
}
