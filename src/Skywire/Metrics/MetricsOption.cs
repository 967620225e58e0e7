using System.CommandLine;
using System.Net;
using Skywire.Core.Channels;

namespace Skywire.Metrics;

/// <summary>
/// The <c>--metrics</c> option of <c>skywire node</c>, <c>manager</c> and <c>messenger</c>: off unless given;
/// <c>PORT</c> means 127.0.0.1:PORT (loopback: the figures name keys and peers), <c>ip:port</c> another address.
/// </summary>
internal static class MetricsOption
{
    public static Option<string?> Create() => new("--metrics")
    {
        Description = "Serve Prometheus metrics at http://ADDRESS/metrics: PORT (on 127.0.0.1) or ip:port. Off unless given.",
        HelpName = "PORT|ip:port",
    };

    /// <summary>Reads the option: null endpoint when absent; false (error printed) when malformed.</summary>
    public static bool TryGet(ParseResult parse, Option<string?> option, TextWriter error, out IPEndPoint? endPoint)
    {
        ArgumentNullException.ThrowIfNull(parse);
        ArgumentNullException.ThrowIfNull(error);
        endPoint = null;
        if (parse.GetValue(option) is not { } text)
        {
            return true;
        }

        if (!MetricsEndpoint.TryParse(text, out var parsed))
        {
            error.WriteLine($"error: --metrics must be PORT or ip:port, not '{text}'");
            return false;
        }

        endPoint = parsed;
        return true;
    }

    /// <summary>Starts the endpoint when asked (null when not); on a bind error prints it and returns false.</summary>
    public static async Task<(bool Ok, MetricsEndpoint? Endpoint)> StartAsync(IPEndPoint? endPoint, string service, IReadOnlyCollection<string> meters, TextWriter error, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(error);
        if (endPoint is null)
        {
            return (true, null);
        }

        try
        {
            var started = await MetricsEndpoint.StartAsync(endPoint, service, meters, cancellationToken);
            await error.WriteLineAsync($"metrics on {started.Url}");
            return (true, started);
        }
        catch (ListenerBindException ex)
        {
            await error.WriteLineAsync("error: " + ex.Message);
            return (false, null);
        }
    }
}
