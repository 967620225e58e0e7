using Viscript.Signal;

if (args.Contains("--help") || args.Contains("-h"))
{
    Console.WriteLine("""
        Viscript.Signal.Sample: a program that opts in to viscript's signal protocol.

        Usage: Viscript.Signal.Sample [--graceful]

          --graceful   stop through SignalClient.ShutdownToken (exit code 3) instead of letting the
                       client end the process after its grace period (exit code 0)

        Environment: SIGNAL_CLIENT (enables), SIGNAL_SERVER_ADDRESS (default localhost:7999),
                     SIGNAL_CLIENT_ID (default 1), SIGNAL_TOKEN (for a server on another host).
        """);
    return 0;
}

// The one line that opts a program in (docs/signal.md, "Opting in").
await using var signal = SignalClient.StartFromEnvironment(options => options with { Log = Console.Error.WriteLine });

if (!signal.IsEnabled)
{
    Console.WriteLine("SIGNAL_CLIENT is not set: running without viscript");
    return 0;
}

Console.WriteLine($"signal client: id {signal.Id}, server {signal.Options!.ServerAddress}");
if (args.Contains("--graceful"))
{
    try
    {
        await Task.Delay(Timeout.Infinite, signal.ShutdownToken);
    }
    catch (OperationCanceledException)
    {
        Console.WriteLine("shutdown requested: stopping gracefully");
    }

    return 3;
}

// Nothing handles shutdown here, so the signal client ends the process with exit code 0 after SHUTDOWN.
await Task.Delay(Timeout.Infinite);
return 1;
