using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Skywire.TestKit.Logging;

/// <summary>One log call captured by <see cref="TestLog"/>.</summary>
/// <param name="Category">The logger's category (usually the type name).</param>
/// <param name="Level">Its level.</param>
/// <param name="EventId">Its event id (the [LoggerMessage] id).</param>
/// <param name="Message">The formatted message.</param>
/// <param name="Exception">The exception logged with it, if any.</param>
public sealed record LogEntry(string Category, LogLevel Level, EventId EventId, string Message, Exception? Exception)
{
    /// <inheritdoc />
    public override string ToString() =>
        $"{Level} {Category}[{EventId.Id}] {Message}{(Exception is null ? "" : " | " + Exception.GetType().Name + ": " + Exception.Message)}";
}

/// <summary>
/// A logger factory for tests that fails the test on any Error or Critical log it was not told to expect
/// (MQTTnet's <c>ThrowIfLogErrors</c>): give it to the component under test, and dispose it at the end of the test
/// (<c>using var log = new TestLog(...)</c>); <see cref="Dispose"/> throws if an unexpected error was logged, which
/// xUnit reports as a failure of that test. Every entry is kept (<see cref="Entries"/>) and, when a writer is given,
/// echoed to the test output.
/// </summary>
/// <remarks>
/// Expected errors are declared up front or during the test with <see cref="ExpectError(int)"/> or
/// <see cref="ExpectError(Func{LogEntry, bool})"/>. A test that provokes failures on purpose (a killed peer, a
/// malformed frame) says which errors it provokes: anything else at Error level is a bug the test would otherwise hide.
/// </remarks>
public sealed class TestLog : ILoggerFactory, ILoggerProvider
{
    /// <summary>The log of the test running on this async flow (set by the constructor), for <see cref="OnFirstChance"/>.</summary>
    private static readonly AsyncLocal<TestLog?> s_current = new();

    private readonly ConcurrentQueue<LogEntry> _entries = new();
    private Exception? _assertionFailure;
    private readonly ConcurrentQueue<Func<LogEntry, bool>> _expected = new();
    private readonly Action<string>? _output;
    private readonly LogLevel _minimum;
    private int _disposed;

    /// <summary>Creates the sink.</summary>
    /// <param name="output">Where to echo each entry (for example <c>TestContext.Current.TestOutputHelper.WriteLine</c>); null: nowhere.</param>
    /// <param name="minimum">Lowest level captured and echoed (errors are always captured).</param>
    public TestLog(Action<string>? output = null, LogLevel minimum = LogLevel.Information)
    {
        _output = output;
        _minimum = minimum;
        s_current.Value = this;
    }

    static TestLog()
    {
        // A failed assertion unwinds through `using var log`, whose Dispose would replace the assertion's exception with
        // ours: remember the first assertion failure of the test's own flow, so Dispose can report both.
        AppDomain.CurrentDomain.FirstChanceException += OnFirstChance;
    }

    private static void OnFirstChance(object? sender, System.Runtime.ExceptionServices.FirstChanceExceptionEventArgs e)
    {
        if (s_current.Value is { } log && log._assertionFailure is null &&
            e.Exception.GetType().GetInterfaces().Any(i => i.FullName == "Xunit.Sdk.IAssertionException"))
        {
            Interlocked.CompareExchange(ref log._assertionFailure, e.Exception, null);
        }
    }

    /// <summary>Every entry at or above the minimum level, and every error, in the order logged.</summary>
    public IReadOnlyList<LogEntry> Entries => [.. _entries];

    /// <summary>Errors (Error or Critical) not matched by any expectation so far.</summary>
    public IReadOnlyList<LogEntry> UnexpectedErrors => [.. _entries.Where(e => e.Level >= LogLevel.Error && !_expected.Any(match => match(e)))];

    /// <summary>Allows Error-level entries with this event id.</summary>
    public TestLog ExpectError(int eventId) => ExpectError(e => e.EventId.Id == eventId);

    /// <summary>Allows Error-level entries that <paramref name="match"/> accepts.</summary>
    public TestLog ExpectError(Func<LogEntry, bool> match)
    {
        ArgumentNullException.ThrowIfNull(match);
        _expected.Enqueue(match);
        return this;
    }

    /// <summary>Throws if an unexpected error was logged.</summary>
    /// <exception cref="UnexpectedErrorLogException">One or more unexpected errors, listed in the message.</exception>
    public void ThrowIfUnexpectedErrors()
    {
        var unexpected = UnexpectedErrors;
        if (unexpected.Count > 0)
        {
            throw new UnexpectedErrorLogException(unexpected, Volatile.Read(ref _assertionFailure));
        }
    }

    /// <inheritdoc />
    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    /// <inheritdoc />
    public void AddProvider(ILoggerProvider provider) => throw new NotSupportedException("TestLog is its own only provider");

    /// <summary>Fails (throws) when an unexpected error was logged; idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            ThrowIfUnexpectedErrors();
        }
    }

    private void Add(LogEntry entry)
    {
        _entries.Enqueue(entry);
        try
        {
            _output?.Invoke(entry.ToString());
        }
        catch (InvalidOperationException)
        {
            // The test has finished and its output is closed: a late log from a background loop is kept, not echoed.
        }
    }

    private sealed class Logger(TestLog owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None && (logLevel >= owner._minimum || logLevel >= LogLevel.Error);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                owner.Add(new LogEntry(category, logLevel, eventId, formatter(state, exception), exception));
            }
        }
    }
}

/// <summary>A test logged an Error it did not declare as expected.</summary>
public sealed class UnexpectedErrorLogException : Exception
{
    /// <summary>Lists the entries in the message, after the test's own assertion failure when there was one.</summary>
    public UnexpectedErrorLogException(IReadOnlyList<LogEntry> entries, Exception? assertionFailure = null)
        : base((assertionFailure is null ? "" : $"The test failed first: {assertionFailure.Message}{Environment.NewLine}and then ") +
            $"{entries.Count} unexpected error log(s):{Environment.NewLine}" + string.Join(Environment.NewLine, entries), assertionFailure)
    {
        Entries = entries;
    }

    /// <summary>The unexpected entries.</summary>
    public IReadOnlyList<LogEntry> Entries { get; }
}
