using Viscript.Core.Control;

namespace Viscript.Daemon;

/// <summary>
/// Who may use the control API (docs/viscript.md "Security"): a client presenting the token as
/// <c>Authorization: Bearer</c>, or a browser holding the GUI session cookie. The cookie is HttpOnly (the page's script
/// never sees it) and SameSite=Strict (no other site's page can make the browser send it); its value is derived from
/// the token, so it proves the token was presented once without being the token. Never from the URL query.
/// </summary>
internal static class ControlAuth
{
    /// <summary>Whether the request may use the API (always, with <c>--no-auth</c>).</summary>
    public static bool IsAuthorized(HttpRequest request, DaemonHost daemon)
    {
        if (daemon.Options.Token is not { Length: > 0 } token)
        {
            return daemon.Options.NoAuth;
        }
        var header = request.Headers.Authorization.ToString();
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return ControlToken.Matches(header["Bearer ".Length..].Trim(), token);
        }
        return request.Cookies.TryGetValue(CookieName(daemon), out var cookie) && ControlToken.Matches(cookie, ControlToken.SessionValue(token));
    }

    /// <summary>
    /// The cookie's name carries the port: browsers do not separate cookies by port, so two daemons on one host would
    /// otherwise overwrite each other's session.
    /// </summary>
    public static string CookieName(DaemonHost daemon) => $"viscript-session-{daemon.ControlEndPoint.Port}";

    /// <summary><c>POST /api/session</c> (already authorized): sets the session cookie.</summary>
    public static void SetSessionCookie(HttpContext ctx, DaemonHost daemon)
    {
        if (daemon.Options.Token is not { Length: > 0 } token)
        {
            return;
        }
        ctx.Response.Cookies.Append(CookieName(daemon), ControlToken.SessionValue(token), new CookieOptions
        {
            HttpOnly = true,
            SameSite = SameSiteMode.Strict,
            Path = "/",
            Secure = ctx.Request.IsHttps,
            IsEssential = true,
        });
        ctx.Response.Headers.CacheControl = "no-store";
    }

    /// <summary><c>DELETE /api/session</c>: signs this browser out.</summary>
    public static void ClearSessionCookie(HttpContext ctx, DaemonHost daemon) =>
        ctx.Response.Cookies.Delete(CookieName(daemon), new CookieOptions { Path = "/", HttpOnly = true, SameSite = SameSiteMode.Strict });
}
