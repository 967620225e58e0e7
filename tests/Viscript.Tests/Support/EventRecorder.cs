using Viscript.Core.Control;
using Viscript.Core.Supervision;

namespace Viscript.Tests.Support;

/// <summary>Records supervisor events and lets a test await one.</summary>
public sealed class EventRecorder : IDisposable
{
    private readonly Supervisor _supervisor;
    private readonly List<ProcessEvent> _events = [];
    private readonly List<(Func<ProcessEvent, bool> Match, TaskCompletionSource<ProcessEvent> Tcs)> _waiters = [];

    public EventRecorder(Supervisor supervisor)
    {
        _supervisor = supervisor;
        supervisor.Changed += OnChanged;
    }

    public IReadOnlyList<ProcessEvent> Events
    {
        get
        {
            lock (_events)
            {
                return _events.ToList();
            }
        }
    }

    private void OnChanged(object? sender, ProcessEvent e)
    {
        lock (_events)
        {
            _events.Add(e);
            foreach (var w in _waiters.ToList())
            {
                if (w.Match(e))
                {
                    w.Tcs.TrySetResult(e);
                    _waiters.Remove(w);
                }
            }
        }
    }

    /// <summary>Waits for the first event (past or future) matching <paramref name="match"/>.</summary>
    public Task<ProcessEvent> WaitAsync(Func<ProcessEvent, bool> match, int timeoutSeconds = 30)
    {
        var tcs = new TaskCompletionSource<ProcessEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_events)
        {
            var hit = _events.FirstOrDefault(match);
            if (hit is not null)
            {
                return Task.FromResult(hit);
            }
            _waiters.Add((match, tcs));
        }
        return tcs.Task.WaitAsync(TimeSpan.FromSeconds(timeoutSeconds));
    }

    /// <summary>Waits for the n-th state event into <paramref name="to"/> for <paramref name="id"/>.</summary>
    public Task<ProcessEvent> WaitStateAsync(ulong id, string to, int occurrence = 1, int timeoutSeconds = 30)
    {
        var seen = 0;
        return WaitAsync(e => e.Kind == "state" && e.Id == id && e.To is { } t && (t == to || t.StartsWith(to + "(", StringComparison.Ordinal)) && ++seen == occurrence, timeoutSeconds);
    }

    public void Dispose() => _supervisor.Changed -= OnChanged;
}
