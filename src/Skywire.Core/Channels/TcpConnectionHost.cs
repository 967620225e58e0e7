using System.Net.Sockets;

namespace Skywire.Core.Channels;

/// <summary>
/// Accepts TCP connections until cancelled and serves each on its own task, keeping the tasks so that a server
/// can wait for them when it stops (the manager's control listener and the node's app API).
/// </summary>
internal sealed class TcpConnectionHost
{
    private readonly Lock _sync = new();
    private readonly List<Task> _tasks = [];

    /// <summary>Accepts until <paramref name="cancellationToken"/> fires or the listener stops; each socket (NoDelay) goes to <paramref name="serve"/>.</summary>
    public async Task AcceptLoopAsync(TcpListener listener, Func<Socket, Task> serve, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptSocketAsync(cancellationToken);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            socket.NoDelay = true;
            Track(Task.Run(() => serve(socket), CancellationToken.None));
        }
    }

    /// <summary>Adds a task the host waits for on stop (finished ones are dropped as new ones come).</summary>
    public void Track(Task task)
    {
        lock (_sync)
        {
            _tasks.RemoveAll(t => t.IsCompleted);
            _tasks.Add(task);
        }
    }

    /// <summary>Waits, at most <paramref name="bound"/>, for every tracked task; their failures are theirs to log.</summary>
    public Task WhenAllAsync(TimeSpan bound)
    {
        Task[] tasks;
        lock (_sync)
        {
            tasks = [.. _tasks];
        }

        return Task.WhenAll(tasks).WaitAsync(bound).ContinueWith(_ => { }, TaskScheduler.Default);
    }
}
