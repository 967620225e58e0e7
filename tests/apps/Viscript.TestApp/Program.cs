// A tiny program for viscript's tests: a signal client (when SIGNAL_CLIENT is set) with one behaviour per mode.
using System.Globalization;
using System.Runtime.InteropServices;
using Viscript.Signal;

// One line opts in: registers with viscript when SIGNAL_CLIENT is set (inert otherwise), answers ping/ru/sd.
await using var signal = SignalClient.StartFromEnvironment();
var mode = args.Length > 0 ? args[0] : "sleep";
PosixSignalRegistration? ignoreTerm = null;

switch (mode)
{
    case "sleep":
        // Sleep until killed; prints a marker so tests know output capture works.
        Console.WriteLine($"testapp sleeping pid {Environment.ProcessId}");
        await Task.Delay(Timeout.Infinite);
        break;
    case "args":
        // Echo arguments and the signal environment, then sleep.
        Console.WriteLine("args: " + string.Join('|', args[1..]));
        Console.WriteLine($"env: SIGNAL_CLIENT={Environment.GetEnvironmentVariable("SIGNAL_CLIENT")} SIGNAL_CLIENT_ID={Environment.GetEnvironmentVariable("SIGNAL_CLIENT_ID")} SIGNAL_SERVER_ADDRESS={Environment.GetEnvironmentVariable("SIGNAL_SERVER_ADDRESS")}");
        Console.Out.Flush();
        await Task.Delay(Timeout.Infinite);
        break;
    case "crash":
        // crash <code> <ms>: exit with code after ms.
        var code = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 1;
        var ms = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 0;
        Console.Error.WriteLine($"testapp will exit with {code} after {ms} ms");
        await Task.Delay(ms);
        return code;
    case "flood":
        // flood [lines]: write lines as fast as possible (0 or absent = forever).
        var lines = args.Length > 1 ? long.Parse(args[1], CultureInfo.InvariantCulture) : 0;
        var stdout = new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = false };
        for (long i = 1; lines == 0 || i <= lines; i++)
        {
            stdout.Write("flood line ");
            stdout.WriteLine(i);
        }
        stdout.Flush();
        await Task.Delay(Timeout.Infinite);
        break;
    case "echo":
        // echo: copy stdin lines to stdout until EOF.
        Console.WriteLine("testapp echo ready");
        while (Console.ReadLine() is { } line)
        {
            Console.WriteLine("echo: " + line);
        }
        break;
    case "ignore-term":
        // ignore-term: SIGTERM is ignored; only SIGKILL ends it.
        ignoreTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx =>
        {
            ctx.Cancel = true;
            Console.WriteLine("testapp ignoring SIGTERM");
        });
        Console.WriteLine("testapp ignoring SIGTERM from now on");
        await Task.Delay(Timeout.Infinite);
        break;
    case "spawn":
        // spawn: start a grandchild (sleep) and sleep; for process-tree cleanup tests.
        using (var child = System.Diagnostics.Process.Start("sleep", "1000"))
        {
            Console.WriteLine($"grandchild {child.Id}");
            await Task.Delay(Timeout.Infinite);
        }
        break;
    default:
        Console.Error.WriteLine($"unknown mode '{mode}'; modes: sleep, args, crash <code> <ms>, flood [lines], echo, ignore-term, spawn");
        return 2;
}
GC.KeepAlive(ignoreTerm);
return 0;
