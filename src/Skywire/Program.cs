using System.Runtime.InteropServices;
using Skywire.Commands;

var root = SkywireRoot.Create();
// Ctrl+C and SIGTERM cancel the running command's token, so it stops cleanly (System.CommandLine 2.0.0
// installs no handler by default). A second signal, while the first is being handled, ends the process at once.
using var shutdown = new CancellationTokenSource();
void OnSignal(PosixSignalContext context)
{
    context.Cancel = !shutdown.IsCancellationRequested;
    shutdown.Cancel();
}

using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
var parse = root.Parse(args);
if (UsageErrors.TryReport(parse, Console.Error, out var usage))
{
    return usage;
}

return await parse.InvokeAsync(cancellationToken: shutdown.Token);
