using System.Globalization;

namespace Skywire.Demo;

/// <summary>The summary printed once everything is up (interactive mode).</summary>
internal sealed partial class DemoRunner
{
    private void PrintSummary()
    {
        var o = _out;
        var (skywirePath, prefix) = SkywireCommand();
        var skywire = Shell(prefix.Count == 0 ? [Absolute(skywirePath)] : ["dotnet", .. prefix.Select(Absolute)]);
        var apphost = Path.ChangeExtension(_viscriptPath, null);
        var viscriptCli = !_viscriptPath.EndsWith(".dll", StringComparison.OrdinalIgnoreCase)
            ? Shell([Absolute(_viscriptPath), "cli", "--control", _viscript!.ControlUrl.Authority])
            : File.Exists(apphost)
                ? Shell([Absolute(apphost), "cli", "--control", _viscript!.ControlUrl.Authority])
                : Shell(["dotnet", Absolute(_viscriptPath), "cli", "--control", _viscript!.ControlUrl.Authority]);

        o.WriteLine();
        o.WriteLine($"Skywire demo is up ({_progress.Elapsed:0.0} s). Every component is a viscript app (viscript pid {_viscript.Pid}, control {_viscript.ControlUrl}).");
        o.WriteLine();
        // The sign-in link holds the control token (in the #fragment, never sent to a server): printed on a terminal,
        // where the user who owns the token file reads it; redirected output (often a log file) gets the command instead.
        o.WriteLine(_progress.Interactive
            ? $"GUI: open {_viscript.GuiSignInUrl} (apps, terminals, charts, and this mesh's topology from the demo's manager)"
            : $"GUI: {_viscript.ControlUrl} (apps, terminals, charts, and this mesh's topology); sign-in link: {viscriptCli} --gui-url");
        o.WriteLine();
        o.WriteLine("Apps (viscript sequence ids):");
        Table(o, ["ID", "APP", "PID", "ROLE"], _components.OrderBy(c => c.Id).Select(c => (IReadOnlyList<string>)
            [c.Id.ToString(CultureInfo.InvariantCulture), c.App, c.Pid?.ToString(CultureInfo.InvariantCulture) ?? "-", c.Role]));
        o.WriteLine();
        o.WriteLine($"Topology: a chain of {_nodes.Count} nodes (encrypted UDP links on loopback), manager {_managerKey.ToString()[..12]} on {_managerEndPoint}, messenger {_messengerKey.ToString()[..12]} on {_messengerEndPoint}");
        Table(o, ["NODE", "KEY", "LINKS (UDP)", "APP API", "VISCRIPT ID"], _nodes.Select(n => (IReadOnlyList<string>)
            [n.Label, n.Key.ToString(), n.Links.ToString(), n.Apps.ToString(), n.Id.ToString(CultureInfo.InvariantCulture)]));
        o.WriteLine("  links: " + string.Join(", ", _nodes.Zip(_nodes.Skip(1)).Select(p =>
        {
            var link = _links.FirstOrDefault(l => IsPair(l, p.First, p.Second));
            return $"{p.First.Label}-{p.Second.Label}" + (link is { RttMicros: > 0 } ? $" (rtt {link.RttMicros / 1000.0:0.00} ms)" : "");
        })));
        o.WriteLine();
        if (_route is not null)
        {
            o.WriteLine($"Route in use: socks-client beside {_nodes[0].Label} -> socks-server beside {_nodes[^1].Label}, {_route.Path.Count - 1} hops, session {_route.SessionId:x16}:");
            o.WriteLine("  " + PathText(_route));
            for (var i = 0; i < _route.Path.Count; i++)
            {
                o.WriteLine($"  hop {i}: {_route.Path[i]}");
            }

            o.WriteLine();
        }

        PrintMeteringSummary(o, skywire);
        PrintVpnSummary(o);
        o.WriteLine("Try it (paste into another terminal):");
        o.WriteLine($"  curl --socks5-hostname {_socksEndPoint} http://{_web!.EndPoint}/");
        o.WriteLine($"  (any URL works the same way, e.g. http://example.org/ if this host can reach it)");
        o.WriteLine($"  {viscriptCli} la");
        o.WriteLine($"  {skywire} cli --manager {_managerKey}@{_managerEndPoint} --key {Absolute(Path.Combine(_dir, "keys", "operator.json"))} routes");
        o.WriteLine($"  {skywire} chat --messenger {_messengerKey}@{_messengerEndPoint} --key {Absolute(Path.Combine(_dir, "keys", "you.json"))} send {ChatKey()} hi");
        o.WriteLine($"  {skywire} chat --messenger {_messengerKey}@{_messengerEndPoint} --key {Absolute(Path.Combine(_dir, "keys", "you.json"))} web --listen 127.0.0.1:0");
        o.WriteLine("    (Sky-Messenger in the browser: prints a link to open; add the chat listener's key above as a contact)");
        o.WriteLine($"  logs: {Absolute(_logs)}");
        o.WriteLine();
        o.WriteLine("Press Ctrl+C to stop everything.");
        o.Flush();
    }

    private string ChatKey()
    {
        try
        {
            using var key = Core.Crypto.KeyFile.Load(Path.Combine(_dir, "keys", "chat.json"));
            return key.Public.ToString();
        }
        catch (Core.Crypto.KeyFileException)
        {
            return "CHATKEY";
        }
    }

    /// <summary>Absolute paths, so the pasted commands work from any folder (issue 18.8).</summary>
    private static string Absolute(string path) => Path.GetFullPath(path);

    private static string Shell(IEnumerable<string> words) =>
        string.Join(' ', words.Select(w => w.Length > 0 && w.All(c => char.IsAsciiLetterOrDigit(c) || "-_./:@=".Contains(c, StringComparison.Ordinal)) ? w : "'" + w.Replace("'", "'\\''", StringComparison.Ordinal) + "'"));

    private static void Table(TextWriter o, IReadOnlyList<string> header, IEnumerable<IReadOnlyList<string>> rows)
    {
        var all = new List<IReadOnlyList<string>> { header };
        all.AddRange(rows);
        var widths = header.Select((_, i) => all.Max(r => r[i].Length)).ToArray();
        foreach (var row in all)
        {
            o.WriteLine("  " + string.Join("  ", row.Select((cell, i) => i == row.Count - 1 ? cell : cell.PadRight(widths[i]))).TrimEnd());
        }
    }
}
