using Viscript.Cli;

// viscript-cli [--control ADDR] [--token-file FILE] <command> [args...]: the same as `viscript cli ...`.
using var cts = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cts.Cancel();
};
return await CliClient.RunAsync(args, Console.In, Console.Out, Console.Error, cts.Token);
