using System.Collections.Concurrent;
using System.Net;
using System.Threading.Channels;

namespace Viscript.Signal.Tests;

/// <summary>A started <see cref="SignalServer"/> on a free loopback port, with its events as awaitable channels.</summary>
internal sealed class TestServer : IAsyncDisposable
{
    private TestServer(SignalServer server)
    {
        Server = server;
        // The server raises Diagnostic, then DiagnosticReported: signalling from the second means both were seen.
        server.Diagnostic += (_, message) => Diagnostics.Enqueue(message);
        server.DiagnosticReported += (_, diagnostic) =>
        {
            Structured.Enqueue(diagnostic);
            DiagnosticChannel.Writer.TryWrite(diagnostic.Message);
        };
        server.ClientRegistered += (_, info) => Registered.Writer.TryWrite(info);
        server.ClientDisconnected += (_, info) => Disconnected.Writer.TryWrite(info);
    }

    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    public SignalServer Server { get; }

    public IPEndPoint EndPoint => Server.LocalEndPoint;

    public ConcurrentQueue<string> Diagnostics { get; } = new();

    public Channel<string> DiagnosticChannel { get; } = Channel.CreateUnbounded<string>();

    public ConcurrentQueue<SignalDiagnostic> Structured { get; } = new();

    public Channel<SignalClientInfo> Registered { get; } = Channel.CreateUnbounded<SignalClientInfo>();

    public Channel<SignalClientInfo> Disconnected { get; } = Channel.CreateUnbounded<SignalClientInfo>();

    public static async Task<TestServer> StartAsync(SignalServerOptions? options = null)
    {
        options ??= new SignalServerOptions();
        if (options.Listen.Port == SignalServerOptions.Default.Listen.Port)
        {
            options = options with { Listen = new IPEndPoint(IPAddress.Loopback, 0) };
        }

        var server = new TestServer(new SignalServer(options));
        await server.Server.StartAsync(TestContext.Current.CancellationToken);
        return server;
    }

    public async Task<SignalClientInfo> NextRegisteredAsync()
    {
        using var timeout = new CancellationTokenSource(Deadline);
        return await Registered.Reader.ReadAsync(timeout.Token);
    }

    public async Task<SignalClientInfo> NextDisconnectedAsync()
    {
        using var timeout = new CancellationTokenSource(Deadline);
        return await Disconnected.Reader.ReadAsync(timeout.Token);
    }

    /// <summary>Waits for a diagnostic containing <paramref name="text"/>.</summary>
    public async Task<string> DiagnosticContainingAsync(string text)
    {
        using var timeout = new CancellationTokenSource(Deadline);
        while (true)
        {
            var message = await DiagnosticChannel.Reader.ReadAsync(timeout.Token);
            if (message.Contains(text, StringComparison.OrdinalIgnoreCase))
            {
                return message;
            }
        }
    }

    public ValueTask DisposeAsync() => Server.DisposeAsync();
}
