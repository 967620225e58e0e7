using System.Globalization;
using System.Net;
using Skywire.TestKit;

namespace Skywire.Benchmarks.Wan;

/// <summary>
/// `dotnet Skywire.Benchmarks.dll impair`: the TestKit's <see cref="UdpFaultRelay"/> as a process, driven line by line
/// on stdin so that a script (bench/mesh/wanbench.py) can put relays in front of real node processes and walk a grid
/// of impaired paths without restarting them. One answer line per command on stdout:
/// <code>
/// new                      -> relay ID LISTEN_IP:PORT   (a relay bound to loopback port 0; target unset)
/// target ID IP:PORT        -> ok                        (where datagrams from the client go)
/// faults ID key=value ...  -> ok                        (both directions; keys: delay_ms jitter_ms loss dup reorder
///                                                         reorder_window rate_bps queue_bytes seed; others keep 0)
/// stats ID                 -> stats ID to=POSTED/DELIVERED/DROPPED from=POSTED/DELIVERED/DROPPED
/// quit (or end of input)   -> every relay closed, exit 0
/// </code>
/// A bad command answers `error: ...` and changes nothing.
/// </summary>
internal static class ImpairRelayTool
{
    public static int Run(TextReader input, TextWriter output)
    {
        var relays = new List<UdpFaultRelay>();
        try
        {
            while (input.ReadLine() is { } line)
            {
                var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (words.Length == 0)
                {
                    continue;
                }
                if (words[0] == "quit")
                {
                    break;
                }
                try
                {
                    output.WriteLine(Execute(words, relays));
                }
                catch (Exception ex) when (ex is FormatException or ArgumentException or OverflowException)
                {
                    output.WriteLine("error: " + ex.Message);
                }
                output.Flush();
            }
            return 0;
        }
        finally
        {
            foreach (var relay in relays)
            {
                relay.Dispose();
            }
        }
    }

    private static string Execute(string[] words, List<UdpFaultRelay> relays)
    {
        switch (words[0])
        {
            case "new":
                relays.Add(new UdpFaultRelay(new IPEndPoint(IPAddress.Loopback, 9)));
                return $"relay {relays.Count - 1} {relays[^1].ListenEndPoint}";
            case "target" when words.Length == 3:
                Relay(relays, words[1]).Target = IPEndPoint.Parse(words[2]);
                return "ok";
            case "faults" when words.Length >= 2:
                var to = Parse(words.AsSpan(2));
                Relay(relays, words[1]).SetFaults(to, to with { Seed = to.Seed + 1 });
                return "ok";
            case "stats" when words.Length == 2:
                var r = Relay(relays, words[1]);
                return $"stats {words[1]} to={r.ToTarget.Posted}/{r.ToTarget.Delivered}/{r.ToTarget.Dropped} from={r.FromTarget.Posted}/{r.FromTarget.Delivered}/{r.FromTarget.Dropped}";
            default:
                throw new FormatException($"unknown command or wrong arguments: {string.Join(' ', words)}");
        }
    }

    private static UdpFaultRelay Relay(List<UdpFaultRelay> relays, string id) =>
        int.TryParse(id, CultureInfo.InvariantCulture, out var i) && i >= 0 && i < relays.Count ? relays[i] : throw new FormatException($"no relay {id}");

    private static FaultOptions Parse(ReadOnlySpan<string> pairs)
    {
        var options = new FaultOptions { Seed = 1 };
        foreach (var pair in pairs)
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            var key = eq > 0 ? pair[..eq] : throw new FormatException($"'{pair}' is not key=value");
            var value = double.Parse(pair[(eq + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture);
            options = key switch
            {
                "delay_ms" => options with { Delay = TimeSpan.FromMilliseconds(value) },
                "jitter_ms" => options with { Jitter = TimeSpan.FromMilliseconds(value) },
                "loss" => options with { DropRate = Probability(key, value) },
                "dup" => options with { DuplicateRate = Probability(key, value) },
                "reorder" => options with { ReorderRate = Probability(key, value) },
                "reorder_window" => options with { ReorderWindow = checked((int)value) },
                "rate_bps" => options with { RateBytesPerSecond = value },
                "queue_bytes" => options with { QueueBytes = checked((int)value) },
                "seed" => options with { Seed = checked((int)value) },
                _ => throw new FormatException($"unknown fault '{key}'"),
            };
        }
        return options;
    }

    private static double Probability(string key, double value) =>
        value is >= 0 and <= 1 ? value : throw new FormatException($"{key} must be 0..1, not {value}");
}
