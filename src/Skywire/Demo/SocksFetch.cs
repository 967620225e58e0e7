using System.Net;

namespace Skywire.Demo;

/// <summary>An HTTP GET through a SOCKS5 proxy with <see cref="HttpClient"/> and a <c>socks5://</c> proxy: what curl --socks5 does.</summary>
internal static class SocksFetch
{
    /// <summary>The answer: HTTP status code and body bytes.</summary>
    public sealed record Result(int Status, byte[] Body);

    /// <exception cref="DemoStepException">The proxy or the mesh behind it refused, or the answer is not HTTP.</exception>
    public static async Task<Result> GetAsync(IPEndPoint proxy, IPEndPoint target, string path, CancellationToken cancellationToken)
    {
        using var handler = new SocketsHttpHandler
        {
            Proxy = new WebProxy(new Uri($"socks5://{proxy}")) { BypassProxyOnLocal = false },
            UseProxy = true,
            UseCookies = false,
            PooledConnectionLifetime = TimeSpan.Zero,
        };
        using var http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        try
        {
            using var response = await http.GetAsync(new Uri($"http://{target}{path}"), cancellationToken);
            return new Result((int)response.StatusCode, await response.Content.ReadAsByteArrayAsync(cancellationToken));
        }
        catch (HttpRequestException ex)
        {
            var reason = ex.InnerException is { } inner && inner.Message != ex.Message ? $"{ex.Message} ({inner.Message})" : ex.Message;
            throw new DemoStepException($"the fetch through the SOCKS proxy {proxy} failed: {reason}");
        }
    }
}
