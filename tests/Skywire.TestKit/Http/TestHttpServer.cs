using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Skywire.TestKit.Http;

/// <summary>
/// The one small HTTP server of the tests and benchmarks: Kestrel on 127.0.0.1:0, one request per connection
/// (<c>Connection: close</c>). <c>GET /bytes/N</c> answers N bytes of a fixed pseudo-random pattern
/// (<see cref="ExpectedHash"/> gives its SHA-256, <see cref="ExpectedBody"/> the bytes), streamed, so N may be far
/// larger than memory; anything else answers <see cref="Hello"/>. Every accepted connection is tracked until Kestrel
/// has closed it (<see cref="Connections"/>, <see cref="Active"/>), so a test can assert that a target was freed.
/// </summary>
public sealed class TestHttpServer : IAsyncDisposable
{
    /// <summary>The body of every path but <c>/bytes/N</c>.</summary>
    public const string Hello = "hello through the mesh\n";

    private const int BlockSize = 1 << 20;
    private static readonly byte[] Block = MakeBlock();

    private readonly ConcurrentDictionary<int, Task> _connections = new();
    private readonly WebApplication _app;
    private int _nextId;

    /// <summary>Starts the server (synchronously, so it can be a field initializer).</summary>
    public TestHttpServer()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = 1 << 20;
            k.Listen(IPAddress.Loopback, 0, listen => listen.Use(next => async connection =>
            {
                var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _connections[Interlocked.Increment(ref _nextId)] = done.Task;
                try
                {
                    await next(connection);
                }
                finally
                {
                    done.TrySetResult();
                }
            }));
        });
        _app = builder.Build();
        _app.Run(ServeAsync);
        _app.StartAsync().GetAwaiter().GetResult();
        var address = _app.Urls.First();
        Port = new Uri(address).Port;
        EndPoint = new IPEndPoint(IPAddress.Loopback, Port);
    }

    /// <summary>The bound port.</summary>
    public int Port { get; }

    /// <summary>The bound address.</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>One task per accepted connection, complete once Kestrel has closed it.</summary>
    public ICollection<Task> Connections => _connections.Values;

    /// <summary>Connections accepted so far.</summary>
    public int Accepted => Volatile.Read(ref _nextId);

    /// <summary>Connections not closed yet.</summary>
    public int Active => _connections.Values.Count(t => !t.IsCompleted);

    /// <summary>SHA-256 of the first <paramref name="length"/> bytes of the pattern.</summary>
    public static byte[] ExpectedHash(long length)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        for (long sent = 0; sent < length; sent += BlockSize)
        {
            hash.AppendData(Block, 0, (int)Math.Min(BlockSize, length - sent));
        }

        return hash.GetHashAndReset();
    }

    /// <summary>The first <paramref name="length"/> bytes of the pattern.</summary>
    public static byte[] ExpectedBody(int length)
    {
        var body = new byte[length];
        for (var offset = 0; offset < length; offset += BlockSize)
        {
            Block.AsSpan(0, Math.Min(BlockSize, length - offset)).CopyTo(body.AsSpan(offset));
        }

        return body;
    }

    private static byte[] MakeBlock()
    {
        var block = new byte[BlockSize];
        new Random(4242).NextBytes(block);
        return block;
    }

    private static async Task ServeAsync(HttpContext ctx)
    {
        ctx.Response.Headers.Connection = "close";
        var path = ctx.Request.Path.Value ?? "/";
        if (path.StartsWith("/bytes/", StringComparison.Ordinal)
            && long.TryParse(path.AsSpan("/bytes/".Length), NumberStyles.None, CultureInfo.InvariantCulture, out var length))
        {
            ctx.Response.ContentLength = length;
            ctx.Response.ContentType = "application/octet-stream";
            try
            {
                for (long sent = 0; sent < length; sent += BlockSize)
                {
                    await ctx.Response.Body.WriteAsync(Block.AsMemory(0, (int)Math.Min(BlockSize, length - sent)), ctx.RequestAborted);
                }
            }
            catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
            {
                // The client went away mid-body: the case the disconnect tests provoke.
            }
            return;
        }
        ctx.Response.ContentLength = Hello.Length;
        ctx.Response.ContentType = "text/plain";
        await ctx.Response.WriteAsync(Hello, ctx.RequestAborted);
    }

    /// <summary>Stops the server (connections still open are cut after 5 s) and waits for every connection to close.</summary>
    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await _app.StopAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            // Kestrel aborts what is left.
        }
        await _app.DisposeAsync();
        await Task.WhenAll(_connections.Values);
    }
}
