using System.Net;

namespace Viscript.Core;

/// <summary>Parses listen and connect addresses given on the command line.</summary>
public static class Endpoints
{
    /// <summary>
    /// Parses <c>host:port</c>, <c>[v6]:port</c>, a bare port (loopback) or <c>localhost:port</c>; an <c>http://</c> prefix is accepted.
    /// Host names other than localhost are not resolved: listeners take addresses.
    /// </summary>
    public static bool TryParse(string text, out IPEndPoint endPoint)
    {
        endPoint = null!;
        var t = text.Trim();
        if (t.StartsWith("http://", StringComparison.OrdinalIgnoreCase))
        {
            t = t["http://".Length..].TrimEnd('/');
        }
        if (int.TryParse(t, out var portOnly))
        {
            if (portOnly is < 0 or > 65535)
            {
                return false;
            }
            endPoint = new IPEndPoint(IPAddress.Loopback, portOnly);
            return true;
        }
        if (t.StartsWith("localhost:", StringComparison.OrdinalIgnoreCase))
        {
            t = "127.0.0.1:" + t["localhost:".Length..];
        }
        if (!IPEndPoint.TryParse(t, out var ep) || !t.Contains(':', StringComparison.Ordinal))
        {
            return false;
        }
        endPoint = ep;
        return true;
    }

    /// <summary>Whether only this host can reach an endpoint bound to <paramref name="address"/>.</summary>
    public static bool IsLoopback(IPAddress address) => IPAddress.IsLoopback(address);

    /// <summary>host:port with IPv6 in brackets.</summary>
    public static string Format(IPEndPoint ep) => ep.ToString();
}
