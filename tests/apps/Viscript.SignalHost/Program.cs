// A signal server alone in a process, for tests that must lower its descriptor limit (prlimit) or flood it without
// risking the test runner. Prints "listening <port>" once bound; then one line per event ("registered <id>",
// "diagnostic <kind> <text>"); answers "stats <marker>" on stdin with "stats fds=<open descriptors> <marker>"; exits
// when stdin closes. Options: idle-ms=N, reg-ms=N.
using System.Globalization;
using System.Net;
using Viscript.Signal;

var options = new SignalServerOptions { Listen = new IPEndPoint(IPAddress.Loopback, 0) };
foreach (var arg in args)
{
    var (key, value) = arg.Split('=', 2) switch
    {
        [var k, var v] => (k, v),
        _ => (arg, ""),
    };
    var ms = TimeSpan.FromMilliseconds(double.Parse(value is "" ? "0" : value, CultureInfo.InvariantCulture));
    options = key switch
    {
        "idle-ms" => options with { IdleTimeout = ms },
        "reg-ms" => options with { RegistrationTimeout = ms },
        _ => throw new ArgumentException($"unknown option {key}"),
    };
}

var output = Console.Out;
var gate = new Lock();
void Say(string line)
{
    lock (gate)
    {
        output.WriteLine(line);
        output.Flush();
    }
}

await using var server = new SignalServer(options);
server.ClientRegistered += (_, c) => Say($"registered {c.Id}");
server.DiagnosticReported += (_, d) => Say($"diagnostic {d.Kind} {d.Message}");
await server.StartAsync();
Say($"listening {server.LocalEndPoint.Port}");
while (await Console.In.ReadLineAsync() is { } command)
{
    if (command.StartsWith("stats", StringComparison.Ordinal))
    {
        Say($"stats fds={Directory.GetFileSystemEntries("/proc/self/fd").Length} {command[5..].Trim()}");
    }
}
return 0;
